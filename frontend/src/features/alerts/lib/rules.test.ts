import { deliveryOutcome, describeCondition, describeSilence, ruleBody, selectorOf, silenceEnd, testOutcome, type RuleForm } from "./rules";

const form: RuleForm = { name: " prod down ", kind: "gateway_unhealthy", threshold: "", selector: " env=prod ", channelIds: ["c1"], enabled: true };

describe("ruleBody", () => {
  it("sends only the kind's threshold, the trimmed name and selector", () => {
    expect(ruleBody(form)).toEqual({ name: "prod down", kind: "gateway_unhealthy", selector: "env=prod", channel_ids: ["c1"], enabled: true });
    expect(ruleBody({ ...form, threshold: "0" })).toMatchObject({ for_minutes: 0 });
    expect(ruleBody({ ...form, kind: "fleet_unhealthy_percent", threshold: "12.5" })).toMatchObject({ percent: 12.5, selector: "env=prod" });
  });
  it("leaves the selector out for kinds without one, and when empty", () => {
    const body = ruleBody({ ...form, kind: "token_expiring", threshold: "48" });
    expect(body).toEqual({ name: "prod down", kind: "token_expiring", hours: 48, channel_ids: ["c1"], enabled: true });
    expect(ruleBody({ ...form, selector: "  " })).not.toHaveProperty("selector");
  });
});

describe("describeCondition", () => {
  it("puts each kind's threshold into words", () => {
    const base = { for_minutes: null, percent: null, within_minutes: null, hours: null };
    expect(describeCondition({ ...base, kind: "gateway_unhealthy", for_minutes: 5 })).toBe("a gateway is unhealthy or offline for 5 min or more");
    expect(describeCondition({ ...base, kind: "gateway_unhealthy", for_minutes: 0 })).toBe("a gateway is unhealthy or offline");
    expect(describeCondition({ ...base, kind: "fleet_unhealthy_percent", percent: 12.5 })).toBe("more than 12.5 % of the gateways are unhealthy or offline");
    expect(describeCondition({ ...base, kind: "token_expiring", hours: 0.5 })).toBe("a registration token expires within 0.5 h");
    expect(describeCondition({ ...base, kind: "deployment_failed" })).toBe("a deployment failed or was rolled back (fires for 60 min)");
  });
});

describe("silences", () => {
  it("ends a silence hours from now, in UTC", () => {
    expect(silenceEnd(Date.parse("2026-12-01T12:00:00Z"), 2)).toBe("2026-12-01T14:00:00.000Z");
  });
  it("says what a silence matches", () => {
    const name = (id: string) => (id === "r1" ? "prod down" : undefined);
    expect(describeSilence({ rule_id: "r1", selector: null }, name)).toBe("rule “prod down”");
    expect(describeSilence({ rule_id: "r1", selector: "env=prod" }, name)).toBe("rule “prod down” and env=prod");
    expect(describeSilence({ rule_id: null, selector: "" }, name)).toBe("every alert");
    expect(describeSilence({ rule_id: "gone", selector: null }, name)).toBe("rule “deleted rule”");
  });
});

describe("outcomes", () => {
  it("describes deliveries", () => {
    expect(deliveryOutcome({ state: "sent", attempts: 1, last_status: 200, last_error: null })).toBe("sent (HTTP 200)");
    expect(deliveryOutcome({ state: "pending", attempts: 0, last_status: null, last_error: null })).toBe("queued");
    expect(deliveryOutcome({ state: "pending", attempts: 2, last_status: 500, last_error: null })).toBe("retrying (attempt 2 failed: HTTP 500)");
    expect(deliveryOutcome({ state: "failed", attempts: 8, last_status: null, last_error: "timed out" })).toBe("failed after 8 attempts: timed out");
  });
  it("describes a test delivery", () => {
    expect(testOutcome({ delivered: true, status_code: 200, error: null })).toBe("Delivered (HTTP 200)");
    expect(testOutcome({ delivered: false, status_code: 500, error: null })).toBe("Not delivered: HTTP 500");
    expect(testOutcome({ delivered: false, status_code: null, error: "connection refused" })).toBe("Not delivered: connection refused");
  });
});

describe("selectorOf", () => {
  it("matches an alert's labels, sorted, skipping what key=value cannot say", () => {
    expect(selectorOf({ region: "eu", env: "prod" })).toBe("env=prod,region=eu");
    expect(selectorOf({ env: "prod", note: "a b", n: 3 })).toBe("env=prod");
    expect(selectorOf({})).toBe("");
  });
});
