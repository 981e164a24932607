// Fails when src/lib/api-types.ts is not what the backend's OpenAPI document generates now.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "flowgate-api-"));
const spec = join(dir, "openapi.json");
const out = join(dir, "api-types.ts");
writeFileSync(spec, execFileSync("../.venv/bin/flowgate", ["openapi"]));
execFileSync("node_modules/.bin/openapi-typescript", [spec, "-o", out], { stdio: "ignore" });
const fresh = readFileSync(out, "utf8");
const committed = readFileSync("src/lib/api-types.ts", "utf8");
if (fresh !== committed) {
  console.error("src/lib/api-types.ts is stale: run `npm run gen:api` in frontend/ and commit it.");
  process.exit(1);
}
console.log("api-types.ts matches the OpenAPI document");
