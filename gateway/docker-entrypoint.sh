#!/usr/bin/env bash
# docker-entrypoint.sh -- start-up orchestration of the FlowGate gateway container.
#
#   docker-entrypoint.sh [COLLECTOR_ARGS...]   run the gateway in GATEWAY_MODE
#   docker-entrypoint.sh healthcheck           container health probe (HEALTHCHECK)
#   docker-entrypoint.sh COMMAND [ARGS...]     run another command (bash, onboard.sh, ...)
#
# GATEWAY_MODE:
#   rest        (default) the seed's REST flow: the collector runs with the saved or local
#               config; heartbeat.sh onboards, heartbeats and applies configs in the
#               background. The data plane does not wait for the control plane: telemetry
#               flows while the backend is unreachable.
#   supervisor  native OpAMP: the OpenTelemetry OpAMP supervisor runs and manages the
#               collector (remote config, health, effective config, heartbeats).
#   extension   native OpAMP, reporting only: the collector runs with its local config
#               plus the opamp extension (no remote config; upstream limitation).
#
# SIGTERM/SIGINT: stop the heartbeat loop, then the collector (SIGTERM; SIGKILL after
# SHUTDOWN_TIMEOUT seconds), exit 0. SIGHUP: reload the collector's config.
set -Eeuo pipefail

_FG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$_FG_DIR/lib.sh"
# shellcheck source=update-opamp-config.sh
source "$_FG_DIR/update-opamp-config.sh"

: "${GATEWAY_MODE:=rest}"
: "${OPAMP_SUPERVISOR_BIN:=/usr/local/bin/opampsupervisor}"
: "${OPAMP_SUPERVISOR_TEMPLATE:=/etc/otelcol/opampsupervisor.yaml}"
: "${OPAMP_EXTENSION_CONFIG:=/etc/otelcol/opamp-extension.yaml}"
: "${SHUTDOWN_TIMEOUT:=20}"
: "${COLLECTOR_HEALTH_URL=http://127.0.0.1:13133/}"
: "${COLLECTOR_MAX_CRASHES:=5}"
: "${EXIT_ON_ONBOARD_FAILURE:=true}"

FG_COLLECTOR_PID=""
FG_AGENT_PID=""
FG_COLLECTOR_ARGS=()
FG_COLLECTOR_STARTER=ep_start_collector
FG_STOP_SIGNAL=TERM # the OpAMP supervisor handles SIGINT only
FG_HUP_PENDING=0
_EP_OPAMP_ENDPOINT=""
_EP_AUTH_KIND=""

ep_log() { fg_log GATEWAY "$@"; }

# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------

_ep_write_pid() {
	printf '%s\n' "$2" | fg_write_file "$GATEWAY_RUN_DIR/$1.pid" 0600
}

ep_start_collector() {
	env -u REGISTRATION_TOKEN -u OPAMP_TOKEN \
		"$OTELCOL_BIN" --config="$FG_CONFIG_CURRENT" "${FG_COLLECTOR_ARGS[@]}" &
	FG_COLLECTOR_PID=$!
	_ep_write_pid collector "$FG_COLLECTOR_PID"
	ep_log INFO "collector started (pid $FG_COLLECTOR_PID, config version=$(fg_state version) source=$(fg_state source))"
}

ep_start_agent() {
	"$BASH" "$_FG_DIR/heartbeat.sh" &
	FG_AGENT_PID=$!
	ep_log INFO "heartbeat loop started (pid $FG_AGENT_PID, every ${HEARTBEAT_INTERVAL}s)"
}

# ep_stop_process PID SIGNAL NAME -- signal, wait up to SHUTDOWN_TIMEOUT, then SIGKILL.
ep_stop_process() {
	local pid=$1 sig=$2 name=$3 deadline
	[[ -n $pid ]] || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	deadline=$((SECONDS + SHUTDOWN_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			ep_log WARN "$name (pid $pid) did not stop within ${SHUTDOWN_TIMEOUT}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	wait "$pid" 2>/dev/null || true
}

ep_shutdown() {
	local code=${1:-0}
	trap '' TERM INT HUP
	ep_log INFO "stopping: heartbeat loop, then collector"
	if [[ -n $FG_AGENT_PID ]]; then
		ep_stop_process "$FG_AGENT_PID" TERM "heartbeat loop"
		FG_AGENT_PID=""
	fi
	if [[ -n $FG_COLLECTOR_PID ]]; then
		ep_stop_process "$FG_COLLECTOR_PID" "$FG_STOP_SIGNAL" collector
		FG_COLLECTOR_PID=""
	fi
	rm -f -- "$GATEWAY_RUN_DIR/collector.pid" "$GATEWAY_RUN_DIR/supervisor.pid"
	ep_log INFO "stopped"
	exit "$code"
}

ep_on_hup() {
	FG_HUP_PENDING=1
}

# ep_on_exit -- safety net: never leave the collector or the heartbeat loop behind if the
# entrypoint itself fails.
ep_on_exit() {
	local pid
	for pid in "$FG_AGENT_PID" "$FG_COLLECTOR_PID"; do
		if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
			kill -"$FG_STOP_SIGNAL" "$pid" 2>/dev/null || true
		fi
	done
}

# ---------------------------------------------------------------------------------------
# REST mode
# ---------------------------------------------------------------------------------------

ep_on_collector_exit() {
	local status=$1
	FG_COLLECTOR_PID=""
	rm -f -- "$GATEWAY_RUN_DIR/collector.pid"
	if ((SECONDS - _EP_CRASH_WINDOW > 60)); then
		_EP_CRASHES=0
		_EP_CRASH_WINDOW=$SECONDS
	fi
	_EP_CRASHES=$((_EP_CRASHES + 1))
	ep_log ERROR "collector exited unexpectedly (status $status); crash $_EP_CRASHES in the last minute"
	if ((_EP_CRASHES >= COLLECTOR_MAX_CRASHES)); then
		ep_log ERROR "collector keeps crashing; giving up"
		ep_shutdown 1
	fi
	if [[ $GATEWAY_MODE == rest ]]; then
		fg_config_recover_after_crash "$_EP_CRASHES" || true
	fi
	fg_backoff_ms "$_EP_CRASHES"
	fg_ms_to_s "$REPLY"
	ep_log INFO "restarting the collector in ${REPLY}s"
	fg_sleep "$REPLY"
	((FG_STOPPING)) && ep_shutdown 0
	"$FG_COLLECTOR_STARTER"
}

ep_on_agent_exit() {
	local status=$1
	FG_AGENT_PID=""
	case $status in
	2 | 3)
		if [[ $EXIT_ON_ONBOARD_FAILURE == true ]]; then
			ep_log ERROR "onboarding failed (exit $status): stopping the gateway (EXIT_ON_ONBOARD_FAILURE=true)"
			ep_shutdown "$status"
		fi
		ep_log ERROR "onboarding failed (exit $status): the collector keeps running unmanaged"
		return 0
		;;
	esac
	_EP_AGENT_RESTARTS=$((_EP_AGENT_RESTARTS + 1))
	fg_backoff_ms "$_EP_AGENT_RESTARTS"
	fg_ms_to_s "$REPLY"
	ep_log ERROR "heartbeat loop exited (status $status); restarting it in ${REPLY}s"
	fg_sleep "$REPLY"
	((FG_STOPPING)) && ep_shutdown 0
	ep_start_agent
}

ep_supervise() {
	local pid rc
	local -a pids
	_EP_CRASHES=0
	_EP_CRASH_WINDOW=$SECONDS
	_EP_AGENT_RESTARTS=0
	while :; do
		((FG_STOPPING)) && ep_shutdown 0
		if ((FG_HUP_PENDING)); then
			FG_HUP_PENDING=0
			if [[ -n $FG_COLLECTOR_PID && $GATEWAY_MODE != supervisor ]]; then
				ep_log INFO "SIGHUP: reloading the collector"
				kill -HUP "$FG_COLLECTOR_PID" 2>/dev/null || true
			fi
		fi
		pids=()
		[[ -n $FG_COLLECTOR_PID ]] && pids+=("$FG_COLLECTOR_PID")
		[[ -n $FG_AGENT_PID ]] && pids+=("$FG_AGENT_PID")
		((${#pids[@]} > 0)) || ep_shutdown 0
		pid=""
		rc=0
		wait -n -p pid "${pids[@]}" || rc=$?
		((FG_STOPPING)) && ep_shutdown 0
		[[ -n ${pid-} ]] || continue # interrupted by a signal (-p unsets pid)
		if [[ $pid == "$FG_COLLECTOR_PID" ]]; then
			if [[ $GATEWAY_MODE == supervisor ]]; then
				ep_log ERROR "OpAMP supervisor exited (status $rc)"
				FG_COLLECTOR_PID=""
				ep_shutdown "$((rc == 0 ? 1 : rc))"
			fi
			ep_on_collector_exit "$rc"
		elif [[ $pid == "$FG_AGENT_PID" ]]; then
			ep_on_agent_exit "$rc"
		fi
	done
}

ep_run_rest() {
	if [[ -n ${BACKEND_URL-} ]]; then
		fg_require_identity GATEWAY
		fg_require_backend GATEWAY
	fi
	fg_ensure_dirs
	fg_config_prepare_startup
	ep_start_collector
	if [[ -n ${BACKEND_URL-} ]]; then
		ep_start_agent
	else
		ep_log WARN "BACKEND_URL is not set: the collector runs unmanaged (no onboarding, heartbeats or remote config)"
	fi
	ep_supervise
}

# ---------------------------------------------------------------------------------------
# Native OpAMP modes
# ---------------------------------------------------------------------------------------

# ep_resolve_opamp_endpoint -> _EP_OPAMP_ENDPOINT: OPAMP_SERVER_URL, or BACKEND_URL with
# ws(s):// and /v1/opamp.
ep_resolve_opamp_endpoint() {
	local url=${OPAMP_SERVER_URL-}
	if [[ -z $url ]]; then
		[[ -n ${BACKEND_URL-} ]] || fg_die GATEWAY 2 "set OPAMP_SERVER_URL (or BACKEND_URL) for GATEWAY_MODE=$GATEWAY_MODE"
		url=${BACKEND_URL%/}
		url=${url/#https:\/\//wss://}
		url=${url/#http:\/\//ws://}
		url+=/v1/opamp
	fi
	[[ $url =~ ^(wss?|https?)://[^[:space:][:cntrl:]\"\\]+$ ]] ||
		fg_die GATEWAY 2 "OPAMP_SERVER_URL must be a ws://, wss://, http:// or https:// URL"
	_EP_OPAMP_ENDPOINT=$url
}

# ep_select_opamp_credential -> sets _EP_AUTH_KIND (opamp|registration). The value is
# read inside the functions that need it; it never leaves them.
ep_select_opamp_credential() {
	if fg_load_opamp_token; then
		fg_token_is_safe opamp || fg_die GATEWAY 2 "the saved OpAMP token is malformed"
		_EP_AUTH_KIND=opamp
		ep_log INFO "native OpAMP: authenticating with the saved OpAMP token ($(fg_token_fingerprint))"
	elif fg_have_registration_token; then
		fg_token_is_safe registration || fg_die GATEWAY 2 "REGISTRATION_TOKEN contains whitespace, control characters or quotes"
		_EP_AUTH_KIND=registration
		ep_log INFO "native OpAMP: enrolling with REGISTRATION_TOKEN (the server offers the OpAMP token via connection settings)"
	else
		fg_die GATEWAY 3 "native OpAMP needs OPAMP_TOKEN, a saved token in $OPAMP_TOKEN_FILE or REGISTRATION_TOKEN"
	fi
}

# ep_authorization_value -> "Bearer <token>" (call only inside `local -; set +x`).
ep_authorization_value() {
	local -
	set +x
	if [[ $_EP_AUTH_KIND == opamp ]]; then
		printf 'Bearer %s' "$_FG_OPAMP_TOKEN"
	else
		printf 'Bearer %s' "$REGISTRATION_TOKEN"
	fi
}

# ep_yaml_safe VALUE NAME -- values substituted into double-quoted YAML strings.
ep_yaml_safe() {
	[[ $1 != *[[:cntrl:]\"\\]* ]] || fg_die GATEWAY 2 "$2 must not contain quotes, backslashes or control characters"
}

# ep_render_supervisor_config OUT -- fill the @PLACEHOLDERS@ of OPAMP_SUPERVISOR_TEMPLATE;
# written 0600 because it carries the Authorization header.
ep_render_supervisor_config() {
	local -
	set +x
	local out=$1 text auth
	[[ -r $OPAMP_SUPERVISOR_TEMPLATE ]] || fg_die GATEWAY 2 "OPAMP_SUPERVISOR_TEMPLATE $OPAMP_SUPERVISOR_TEMPLATE is not readable"
	auth=$(ep_authorization_value)
	ep_yaml_safe "$GATEWAY_NAME" GATEWAY_NAME
	ep_yaml_safe "$OTELCOL_BIN" OTELCOL_BIN
	ep_yaml_safe "$GATEWAY_STATE_DIR" GATEWAY_STATE_DIR
	ep_yaml_safe "${CA_CERT_FILE-}" CA_CERT_FILE
	text=$(<"$OPAMP_SUPERVISOR_TEMPLATE")
	text=${text//@OPAMP_SERVER_URL@/$_EP_OPAMP_ENDPOINT}
	text=${text//@OPAMP_AUTHORIZATION@/$auth}
	text=${text//@OTELCOL_BIN@/$OTELCOL_BIN}
	text=${text//@SUPERVISOR_STORAGE_DIR@/$GATEWAY_STATE_DIR/supervisor}
	text=${text//@CA_CERT_FILE@/${CA_CERT_FILE-}}
	text=${text//@INSTANCE_ID@/$INSTANCE_ID}
	text=${text//@GATEWAY_NAME@/$GATEWAY_NAME}
	text=${text//@GATEWAY_VERSION@/$GATEWAY_VERSION}
	printf '%s\n' "$text" | fg_write_file "$out" 0600
}

ep_run_supervisor() {
	local rendered=$GATEWAY_RUN_DIR/opampsupervisor.yaml
	fg_ensure_dirs
	fg_require_identity GATEWAY
	ep_resolve_opamp_endpoint
	ep_select_opamp_credential
	ep_render_supervisor_config "$rendered"
	[[ -x $OPAMP_SUPERVISOR_BIN ]] || fg_die GATEWAY 2 "OPAMP_SUPERVISOR_BIN $OPAMP_SUPERVISOR_BIN is not executable"
	env -u REGISTRATION_TOKEN -u OPAMP_TOKEN "$OPAMP_SUPERVISOR_BIN" --config "$rendered" &
	FG_COLLECTOR_PID=$!
	FG_STOP_SIGNAL=INT
	_ep_write_pid supervisor "$FG_COLLECTOR_PID"
	ep_log INFO "OpAMP supervisor started (pid $FG_COLLECTOR_PID) for $_EP_OPAMP_ENDPOINT"
	ep_supervise
}

# ep_instance_uid -> the OpAMP instance_uid for INSTANCE_ID: INSTANCE_ID itself when it is
# a UUID, else a name-based UUID (SHA-1, version 5 layout) so it is stable across restarts
# without any state.
ep_instance_uid() {
	local id=${INSTANCE_ID,,} h
	if [[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; then
		printf '%s' "$id"
		return 0
	fi
	h=$(printf 'flowgate-gateway:%s' "$INSTANCE_ID" | sha1sum)
	h=${h:0:32}
	printf '%s-%s-5%s-%x%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" "$(((16#${h:16:1} & 0x3) | 0x8))" "${h:17:3}" "${h:20:12}"
}

# ep_start_collector_extension -- the collector with its local config plus the opamp
# extension fragment; the credential reaches it through its environment only.
ep_start_collector_extension() {
	local -
	set +x
	(
		FLOWGATE_OPAMP_ENDPOINT=$_EP_OPAMP_ENDPOINT
		FLOWGATE_OPAMP_INSTANCE_UID=$(ep_instance_uid)
		FLOWGATE_OPAMP_AUTHORIZATION=$(ep_authorization_value)
		export FLOWGATE_OPAMP_ENDPOINT FLOWGATE_OPAMP_INSTANCE_UID FLOWGATE_OPAMP_AUTHORIZATION
		exec env -u REGISTRATION_TOKEN -u OPAMP_TOKEN \
			"$OTELCOL_BIN" --config="$FG_CONFIG_CURRENT" --config="$_EP_EXTENSION_FRAGMENT" "${FG_COLLECTOR_ARGS[@]}"
	) &
	FG_COLLECTOR_PID=$!
	_ep_write_pid collector "$FG_COLLECTOR_PID"
	ep_log INFO "collector started with the opamp extension (pid $FG_COLLECTOR_PID) for $_EP_OPAMP_ENDPOINT, instance_uid $(ep_instance_uid)"
}

ep_run_extension() {
	local text
	_EP_EXTENSION_FRAGMENT=$GATEWAY_RUN_DIR/opamp-extension.yaml
	fg_ensure_dirs
	fg_require_identity GATEWAY
	ep_resolve_opamp_endpoint
	ep_select_opamp_credential
	[[ -r $OPAMP_EXTENSION_CONFIG ]] || fg_die GATEWAY 2 "OPAMP_EXTENSION_CONFIG $OPAMP_EXTENSION_CONFIG is not readable"
	text=$(<"$OPAMP_EXTENSION_CONFIG")
	if [[ $_EP_OPAMP_ENDPOINT == http* ]]; then
		# the extension takes exactly one of server.ws / server.http
		text=${text/$'\n      ws:\n'/$'\n      http:\n'}
	fi
	printf '%s\n' "$text" | fg_write_file "$_EP_EXTENSION_FRAGMENT" 0600
	fg_config_use_local
	FG_COLLECTOR_STARTER=ep_start_collector_extension
	ep_start_collector_extension
	ep_supervise
}

# ---------------------------------------------------------------------------------------
# Health probe
# ---------------------------------------------------------------------------------------

ep_healthcheck() {
	local pid="" file=$GATEWAY_RUN_DIR/collector.pid
	[[ $GATEWAY_MODE == supervisor ]] && file=$GATEWAY_RUN_DIR/supervisor.pid
	if [[ $GATEWAY_MODE != supervisor && -n $COLLECTOR_HEALTH_URL ]]; then
		curl --silent --fail --max-time 3 -o /dev/null -- "$COLLECTOR_HEALTH_URL"
		return
	fi
	[[ -r $file ]] && IFS= read -r pid <"$file"
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# ---------------------------------------------------------------------------------------

entrypoint_main() {
	fg_debug_init
	if (($# > 0)); then
		case $1 in
		healthcheck) ep_healthcheck && exit 0 || exit 1 ;;
		-*) FG_COLLECTOR_ARGS=("$@") ;;
		*) exec "$@" ;;
		esac
	fi
	trap 'fg_err_trap GATEWAY' ERR
	fg_install_stop_traps
	trap ep_on_hup HUP
	trap ep_on_exit EXIT
	ep_log INFO "FlowGate gateway $GATEWAY_VERSION starting (GATEWAY_MODE=$GATEWAY_MODE, instance_id=${INSTANCE_ID:-<hostname>})"
	case $GATEWAY_MODE in
	rest) ep_run_rest ;;
	supervisor) ep_run_supervisor ;;
	extension) ep_run_extension ;;
	*) fg_die GATEWAY 2 "GATEWAY_MODE must be rest, supervisor or extension (got '$GATEWAY_MODE')" ;;
	esac
}

entrypoint_main "$@"
