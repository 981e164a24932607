import { dockerRun, extensionYaml, opampEndpoint, supervisorYaml } from "./snippets";

describe("snippets", () => {
  it("turns the page origin into the OpAMP WebSocket endpoint", () => {
    expect(opampEndpoint("http://127.0.0.1:8000")).toBe("ws://127.0.0.1:8000/v1/opamp");
    expect(opampEndpoint("https://fg.example.com/")).toBe("wss://fg.example.com/v1/opamp");
  });
  it("uses the gateway image's variables", () => {
    const cmd = dockerRun("https://fg.example.com", "TOKEN");
    expect(cmd).toContain("-e BACKEND_URL=https://fg.example.com");
    expect(cmd).toContain("-e REGISTRATION_TOKEN=TOKEN flowgate-gateway");
    expect(dockerRun("https://fg.example.com", "T", "supervisor")).toContain("GATEWAY_MODE=supervisor");
  });
  it("puts the token into the OpAMP YAML", () => {
    expect(supervisorYaml("http://h:8000", "T")).toContain('Authorization: "Bearer T"');
    expect(supervisorYaml("http://h:8000", "T")).toContain("accepts_opamp_connection_settings: true");
    expect(extensionYaml("http://h:8000", "T")).toContain("endpoint: ws://h:8000/v1/opamp");
  });
});
