#!/usr/bin/env bash
# onboard.sh -- register this gateway with FlowGate and save its OpAMP token.
#
#   onboard.sh            reuse a saved token after checking it with one heartbeat;
#                         register with REGISTRATION_TOKEN when there is none or it is
#                         rejected.
#   onboard.sh --force    register with REGISTRATION_TOKEN even if a token is saved.
#
# Idempotent: a saved token (OPAMP_TOKEN_FILE, seeded from OPAMP_TOKEN) skips
# registration. While the backend is unreachable (or answers 5xx/429) registration is
# retried with exponential backoff and jitter until it succeeds or a stop signal arrives.
# The token is written 0600, atomically, and never printed.
#
# Exit status: 0 onboarded, 2 bad configuration, 3 rejected (invalid or expired
# registration token, or no credentials at all), 130 stopped by a signal.
# heartbeat.sh sources this file and calls fg_onboard directly.
set -Eeuo pipefail

_FG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$_FG_DIR/lib.sh"

: "${ONBOARD_MAX_ATTEMPTS:=0}" # 0 = retry until stopped

# _fg_host_ip -> first non-loopback address of this host, or nothing.
_fg_host_ip() {
	local ips="" ip
	ips=$(hostname -I 2>/dev/null) || ips=$(hostname -i 2>/dev/null) || ips=""
	for ip in $ips; do
		case $ip in
		127.* | ::1) ;;
		*)
			printf '%s' "$ip"
			return 0
			;;
		esac
	done
}

# fg_registration_body -> the JSON body of POST /api/v1/gateways.
fg_registration_body() {
	local host ip ip_json
	host=$(hostname 2>/dev/null || printf '%s' "$INSTANCE_ID")
	ip=$(_fg_host_ip)
	if [[ -n $ip ]]; then
		ip_json=$(fg_json_str "$ip")
	else
		ip_json=null
	fi
	printf '{"name":%s,"instance_id":%s,"hostname":%s,"ip_address":%s,"metadata":{"version":%s,"otel_version":%s,"capabilities":["ReportsStatus","AcceptsRemoteConfig","ReportsRemoteConfig","ReportsHeartbeat"]}}' \
		"$(fg_json_str "$GATEWAY_NAME")" "$(fg_json_str "$INSTANCE_ID")" "$(fg_json_str "$host")" \
		"$ip_json" "$(fg_json_str "$GATEWAY_VERSION")" "$(fg_json_str "$(fg_otel_version)")"
}

# _fg_save_registration -- persist the OpAMP token (0600) and the non-secret facts.
_fg_save_registration() {
	local -
	set +x
	local body=$FG_HTTP_BODY token gateway_id org_id endpoint
	token=$(fg_json_get opamp_token <<<"$body") || token=""
	if [[ -z $token ]]; then
		fg_log ONBOARD ERROR "registration response has no opamp_token"
		return 1
	fi
	_FG_OPAMP_TOKEN=$token
	if ! fg_token_is_safe opamp; then
		_FG_OPAMP_TOKEN=""
		fg_log ONBOARD ERROR "registration response has a malformed opamp_token"
		return 1
	fi
	fg_save_opamp_token
	gateway_id=$(fg_json_get id <<<"$body") || gateway_id=""
	org_id=$(fg_json_get org_id <<<"$body") || org_id=""
	endpoint=$(fg_json_get opamp_endpoint <<<"$body") || endpoint=""
	fg_kv_write "$GATEWAY_STATE_DIR/gateway.env" \
		"gateway_id=$gateway_id" "org_id=$org_id" "instance_id=$INSTANCE_ID" \
		"opamp_endpoint=$endpoint" "registered_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	fg_log ONBOARD INFO "registered gateway_id=$gateway_id instance_id=$INSTANCE_ID (HTTP $FG_HTTP_STATUS); OpAMP token saved to $OPAMP_TOKEN_FILE ($(fg_token_fingerprint))"
}

# fg_register -- POST /api/v1/gateways with the registration token, retrying transient
# failures. Returns 0, 3 (rejected), 130 (stopped) or 1 (gave up after
# ONBOARD_MAX_ATTEMPTS).
fg_register() {
	local body attempt=0 rc
	body=$(fg_registration_body)
	fg_log ONBOARD INFO "registering instance_id=$INSTANCE_ID name='$GATEWAY_NAME' with $(fg_api_url /api/v1/gateways)"
	while :; do
		attempt=$((attempt + 1))
		rc=0
		fg_http POST "$(fg_api_url /api/v1/gateways)" registration "$body" || rc=$?
		((rc == 130)) && return 130
		case $FG_HTTP_STATUS in
		200 | 201)
			_fg_save_registration || return 3
			return 0
			;;
		401 | 403)
			fg_log ONBOARD ERROR "registration rejected: $(fg_http_detail)"
			return 3
			;;
		esac
		if ! fg_is_transient_status "$FG_HTTP_STATUS"; then
			fg_log ONBOARD ERROR "registration failed: $(fg_http_detail)"
			return 3
		fi
		if ((ONBOARD_MAX_ATTEMPTS > 0 && attempt >= ONBOARD_MAX_ATTEMPTS)); then
			fg_log ONBOARD ERROR "backend unavailable after $attempt attempts: $(fg_http_detail)"
			return 1
		fi
		fg_retry_delay_ms "$attempt"
		fg_ms_to_s "$REPLY"
		fg_log ONBOARD WARN "backend unavailable ($(fg_http_detail)); retry $((attempt + 1)) in ${REPLY}s"
		fg_sleep "$REPLY"
		((FG_STOPPING)) && return 130
	done
}

# _fg_verify_saved_token -- one heartbeat with the saved token: 0 accepted (or backend
# unreachable: keep it), 1 rejected.
_fg_verify_saved_token() {
	local rc=0 url
	url=$(fg_api_url "/api/v1/opamp/heartbeat/$INSTANCE_ID")
	fg_http POST "$url" opamp "{\"version\":$(fg_json_str "$GATEWAY_VERSION")}" || rc=$?
	((rc == 130)) && return 130
	case $FG_HTTP_STATUS in
	200) return 0 ;;
	401 | 403 | 404)
		fg_log ONBOARD WARN "saved OpAMP token rejected: $(fg_http_detail)"
		return 1
		;;
	*)
		fg_log ONBOARD WARN "could not verify the saved OpAMP token ($(fg_http_detail)); keeping it"
		return 0
		;;
	esac
}

# fg_onboard [--force] [--verify]
fg_onboard() {
	local force=0 verify=0 arg rc
	for arg in "$@"; do
		case $arg in
		--force) force=1 ;;
		--verify) verify=1 ;;
		*)
			fg_log ONBOARD ERROR "unknown argument: $arg"
			return 2
			;;
		esac
	done
	fg_require_identity ONBOARD
	fg_require_backend ONBOARD
	fg_ensure_dirs
	if ((!force)) && fg_load_opamp_token; then
		if ((verify)); then
			rc=0
			_fg_verify_saved_token || rc=$?
			((rc == 130)) && return 130
			if ((rc == 0)); then
				fg_log ONBOARD INFO "saved OpAMP token accepted ($(fg_token_fingerprint)); registration skipped"
				return 0
			fi
			force=1
		else
			fg_log ONBOARD INFO "using saved OpAMP token ($(fg_token_fingerprint)); registration skipped"
			return 0
		fi
	fi
	if ! fg_have_registration_token; then
		if ((force)); then
			fg_log ONBOARD ERROR "cannot re-onboard: REGISTRATION_TOKEN is not set"
		else
			fg_log ONBOARD ERROR "no OpAMP token (OPAMP_TOKEN / $OPAMP_TOKEN_FILE) and no REGISTRATION_TOKEN"
		fi
		return 3
	fi
	if ! fg_token_is_safe registration; then
		fg_log ONBOARD ERROR "REGISTRATION_TOKEN contains whitespace, control characters or quotes"
		return 2
	fi
	fg_register
}

onboard_main() {
	fg_debug_init
	trap 'fg_err_trap ONBOARD' ERR
	fg_install_stop_traps
	local rc=0
	if (($# == 0)); then
		fg_onboard --verify || rc=$?
	else
		fg_onboard "$@" || rc=$?
	fi
	exit "$rc"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	onboard_main "$@"
fi
