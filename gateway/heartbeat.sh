#!/usr/bin/env bash
# heartbeat.sh -- the gateway's agent loop (REST mode).
#
# 1. Onboards (onboard.sh): reuses the saved OpAMP token or registers with
#    REGISTRATION_TOKEN, retrying with backoff while the backend is unreachable.
# 2. Every HEARTBEAT_INTERVAL seconds: POST /api/v1/opamp/heartbeat/{INSTANCE_ID} with the
#    agent version, the applied config_version, the last config_status and, when the
#    collector's Prometheus endpoint answers, a few metrics.
# 3. Every CONFIG_POLL_INTERVAL seconds (after a successful heartbeat): one
#    update-opamp-config.sh cycle. A config applied or rejected is reported at once by an
#    extra heartbeat.
#
# Failures: while the backend is down, heartbeats are retried with exponential backoff and
# jitter (BACKOFF_INITIAL_MS .. BACKOFF_MAX_MS). A 401/403/404 means the OpAMP token is no
# longer accepted (revoked, gateway deleted, instance mismatch): with REGISTRATION_TOKEN
# set the gateway re-onboards and continues with the fresh token.
#
# SIGTERM/SIGINT stop the loop promptly (an in-flight request or sleep is interrupted);
# exit status 0. Exit status 2/3 when the first onboarding cannot succeed (bad
# configuration / rejected credentials).
set -Eeuo pipefail

_FG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$_FG_DIR/lib.sh"
# shellcheck source=onboard.sh
source "$_FG_DIR/onboard.sh"
# shellcheck source=update-opamp-config.sh
source "$_FG_DIR/update-opamp-config.sh"


# fg_collect_metrics -> REPLY: a JSON object for "metrics", or "" when unavailable.
fg_collect_metrics() {
	local text
	REPLY=""
	[[ -n $COLLECTOR_METRICS_URL ]] || return 0
	text=$(curl --silent --fail --max-time 2 -- "$COLLECTOR_METRICS_URL" 2>/dev/null) || return 0
	REPLY=$(awk '
		/^#/ { next }
		{
			line = $0
			sub(/\{[^}]*\}/, "", line)
			n = split(line, f, " ")
			if (n < 2) next
			name = f[1]; v = f[2] + 0
		}
		name ~ /^otelcol_receiver_accepted_log_records(_total)?$/ { processed += v; seen = 1 }
		name ~ /^otelcol_(receiver_refused|exporter_send_failed|processor_dropped)_log_records(_total)?$/ { errors += v; seen = 1 }
		END { if (seen) printf "{\"logs_processed\":%d,\"errors\":%d}", processed, errors }
	' <<<"$text") || REPLY=""
}

FG_OTEL_VERSION=""

# fg_heartbeat_body -> JSON: version, otel_version, config_version (the applied one),
# config_status (the outcome of the last config change, with the version and FlowGate's
# config_hash of the config it concerns) and metrics.
fg_heartbeat_body() {
	local body version status source failed_version config_hash failed_config_hash error=""
	[[ -n $FG_OTEL_VERSION ]] || FG_OTEL_VERSION=$(fg_otel_version)
	body="{\"version\":$(fg_json_str "$GATEWAY_VERSION"),\"otel_version\":$(fg_json_str "$FG_OTEL_VERSION")"
	version=$(fg_state version)
	status=$(fg_state status)
	source=$(fg_state source)
	failed_version=$(fg_state failed_version)
	config_hash=$(fg_state config_hash)
	failed_config_hash=$(fg_state failed_config_hash)
	if [[ $version =~ ^[0-9]+$ && $source != local ]]; then
		body+=",\"config_version\":$version"
	fi
	if [[ $status == applied ]]; then
		body+=",\"config_status\":{\"status\":\"applied\""
		[[ $version =~ ^[0-9]+$ && $source != local ]] && body+=",\"config_version\":$version"
		[[ $config_hash =~ ^[0-9a-f]{64}$ && $source != local ]] && body+=",\"config_hash\":\"$config_hash\""
		body+="}"
	elif [[ $status == failed ]]; then
		if [[ -f $FG_CONFIG_ERROR ]]; then
			error=$(<"$FG_CONFIG_ERROR")
			error=${error:0:3000}
		fi
		body+=",\"config_status\":{\"status\":\"failed\",\"error_message\":$(fg_json_str "${error:-configuration rejected}")"
		[[ $failed_version =~ ^[0-9]+$ ]] && body+=",\"config_version\":$failed_version"
		[[ $failed_config_hash =~ ^[0-9a-f]{64}$ ]] && body+=",\"config_hash\":\"$failed_config_hash\""
		body+="}"
	fi
	fg_collect_metrics
	if [[ -n $REPLY ]]; then
		body+=",\"metrics\":$REPLY"
	fi
	printf '%s}' "$body"
}

# fg_send_heartbeat -> 0 accepted, 4 token rejected, 1 transient failure, 130 stopped
fg_send_heartbeat() {
	local rc=0 url body gateway_id
	if ! fg_load_opamp_token; then
		return 4
	fi
	url=$(fg_api_url "/api/v1/opamp/heartbeat/$INSTANCE_ID")
	body=$(fg_heartbeat_body)
	fg_http POST "$url" opamp "$body" || rc=$?
	((rc == 130)) && return 130
	case $FG_HTTP_STATUS in
	200)
		gateway_id=$(fg_json_get gateway_id <<<"$FG_HTTP_BODY") || gateway_id=""
		local cv cs
		cv=$(fg_state version)
		cs=$(fg_state status)
		fg_log HEARTBEAT INFO "ok gateway_id=${gateway_id:-?} instance_id=$INSTANCE_ID config_version=${cv:-none} config_status=${cs:-none}"
		return 0
		;;
	401 | 403 | 404)
		fg_log HEARTBEAT WARN "OpAMP token rejected: $(fg_http_detail)"
		return 4
		;;
	esac
	if fg_is_transient_status "$FG_HTTP_STATUS"; then
		return 1
	fi
	# A 4xx other than auth is a bug on one side; keep going but say so loudly.
	fg_log HEARTBEAT ERROR "heartbeat failed: $(fg_http_detail)"
	return 1
}

heartbeat_main() {
	fg_debug_init
	trap 'fg_err_trap HEARTBEAT' ERR
	fg_install_stop_traps
	fg_require_identity HEARTBEAT
	fg_require_backend HEARTBEAT
	fg_ensure_dirs

	local rc=0 failures=0 auth_failures=0 next_config=0
	fg_onboard || rc=$?
	case $rc in
	0) ;;
	130)
		fg_log HEARTBEAT INFO "stopped before onboarding completed"
		exit 0
		;;
	*)
		fg_log HEARTBEAT ERROR "onboarding failed (exit $rc); not starting heartbeats"
		exit "$rc"
		;;
	esac
	fg_log HEARTBEAT INFO "starting: every ${HEARTBEAT_INTERVAL}s to $(fg_api_url "/api/v1/opamp/heartbeat/$INSTANCE_ID")"

	while ((!FG_STOPPING)); do
		rc=0
		fg_send_heartbeat || rc=$?
		case $rc in
		0)
			if ((failures > 0)); then
				fg_log HEARTBEAT INFO "backend reachable again after $failures failed attempts"
			fi
			failures=0
			auth_failures=0
			if ((SECONDS >= next_config)); then
				next_config=$((SECONDS + CONFIG_POLL_INTERVAL))
				rc=0
				fg_config_update || rc=$?
				case $rc in
				10 | 11) continue ;; # report the outcome right away
				4)
					next_config=0
					continue
					;;
				130) break ;;
				esac
			fi
			fg_sleep "$HEARTBEAT_INTERVAL"
			;;
		4)
			auth_failures=$((auth_failures + 1))
			if ((auth_failures > 1)); then
				# do not hammer the registration endpoint if the fresh token is refused too
				fg_backoff_ms "$auth_failures"
				fg_ms_to_s "$REPLY"
				fg_sleep "$REPLY"
				((FG_STOPPING)) && break
			fi
			if ! fg_have_registration_token; then
				fg_log HEARTBEAT ERROR "OpAMP token rejected and REGISTRATION_TOKEN is not set; waiting for a new token in $OPAMP_TOKEN_FILE"
				((auth_failures > 1)) || {
					fg_backoff_ms 2
					fg_ms_to_s "$REPLY"
					fg_sleep "$REPLY"
				}
				continue
			fi
			fg_log HEARTBEAT INFO "re-onboarding with REGISTRATION_TOKEN"
			rc=0
			fg_onboard --force || rc=$?
			case $rc in
			0) next_config=0 ;;
			130) break ;;
			*) fg_log HEARTBEAT ERROR "re-onboarding failed (exit $rc); will retry" ;;
			esac
			;;
		130) break ;;
		*)
			failures=$((failures + 1))
			fg_retry_delay_ms "$failures"
			fg_ms_to_s "$REPLY"
			fg_log HEARTBEAT WARN "heartbeat failed ($(fg_http_detail)); attempt $failures, retrying in ${REPLY}s"
			fg_sleep "$REPLY"
			;;
		esac
	done
	fg_log HEARTBEAT INFO "stopped"
	exit 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	heartbeat_main "$@"
fi
