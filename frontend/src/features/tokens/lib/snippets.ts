/**
 * The exact lines that put a registration token to use, for the "token created" dialog. They
 * follow the gateway image's variables (BACKEND_URL, INSTANCE_ID, REGISTRATION_TOKEN,
 * GATEWAY_MODE) and the OpAMP supervisor / extension configuration documented in the README.
 */
export function opampEndpoint(origin: string): string {
  return `${origin.replace(/^http(s?):\/\//, "ws$1://").replace(/\/$/, "")}/v1/opamp`;
}

export function dockerRun(origin: string, token: string, mode: "rest" | "supervisor" = "rest"): string {
  return [
    "docker run -d --name gateway-1 -v gateway-1:/var/lib/otelcol -p 4317:4317 -p 4318:4318 \\",
    ...(mode === "supervisor" ? ["  -e GATEWAY_MODE=supervisor \\"] : []),
    `  -e INSTANCE_ID=gateway-1 -e BACKEND_URL=${origin.replace(/\/$/, "")} \\`,
    `  -e REGISTRATION_TOKEN=${token} flowgate-gateway`,
  ].join("\n");
}

export function supervisorYaml(origin: string, token: string): string {
  return `server:
  endpoint: ${opampEndpoint(origin)}
  headers:
    Authorization: "Bearer ${token}"
capabilities:
  accepts_remote_config: true
  reports_remote_config: true
  reports_effective_config: true
  reports_health: true
  accepts_opamp_connection_settings: true
agent:
  executable: /otelcol-contrib
storage:
  directory: /var/lib/otelcol/supervisor
`;
}

export function extensionYaml(origin: string, token: string): string {
  return `extensions:
  opamp:
    server:
      ws:
        endpoint: ${opampEndpoint(origin)}
        headers:
          Authorization: "Bearer ${token}"
service:
  extensions: [opamp]
`;
}
