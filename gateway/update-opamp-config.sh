#!/usr/bin/env bash
# update-opamp-config.sh -- fetch this gateway's collector configuration from FlowGate,
# validate it with the collector's own `validate` command, swap it in atomically, keep the
# previous one as last-good and reload the collector (SIGHUP).
#
#   update-opamp-config.sh     one fetch-and-apply cycle (heartbeat.sh runs it every
#                              CONFIG_POLL_INTERVAL seconds; the result is reported in the
#                              next heartbeat as config_version / config_status)
#
# Files in GATEWAY_CONFIG_DIR (default /var/lib/otelcol/config):
#   current.yaml          the config the collector runs (--config)
#   last_good.yaml        the config that ran before current.yaml (rollback target)
#   rejected.yaml         the last config that failed validation (for inspection)
#   state, last_good.state, last_error
#                         version/hash/source/status of current and last-good, last error;
#                         config_hash (failed_config_hash) is FlowGate's config_hash of the
#                         current (last failed) config, which heartbeats report: a version
#                         number alone does not say which template's version it is
#
# A config that fails validation is never swapped in: the old one keeps running and the
# failure is reported (config_status.status=failed). A config that validates but makes the
# collector exit on reload is rolled back to last_good.yaml and reported as failed too.
#
# Exit status: 0 unchanged, 10 applied, 11 rejected, 1 backend unavailable or other
# error, 4 OpAMP token rejected, 130 stopped.
set -Eeuo pipefail

_FG_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$_FG_DIR/lib.sh"

FG_CONFIG_CURRENT=$GATEWAY_CONFIG_DIR/current.yaml
FG_CONFIG_LAST_GOOD=$GATEWAY_CONFIG_DIR/last_good.yaml
FG_CONFIG_REJECTED=$GATEWAY_CONFIG_DIR/rejected.yaml
FG_CONFIG_STATE=$GATEWAY_CONFIG_DIR/state
FG_CONFIG_LAST_GOOD_STATE=$GATEWAY_CONFIG_DIR/last_good.state
FG_CONFIG_ERROR=$GATEWAY_CONFIG_DIR/last_error
FG_CONFIG_PENDING=$GATEWAY_CONFIG_DIR/pending
FG_CONFIG_LOCK=$GATEWAY_RUN_DIR/config.lock

FG_CONFIG_UNCHANGED=0
FG_CONFIG_APPLIED=10
FG_CONFIG_REJECTED_RC=11

# fg_state KEY [FILE] -> value or empty
fg_state() {
	fg_kv_get "${2:-$FG_CONFIG_STATE}" "$1" || true
}

# _fg_state_write FILE version hash source status failed_hash failed_version deployment_id
#                 config_hash failed_config_hash
_fg_state_write() {
	fg_kv_write "$1" "version=$2" "hash=$3" "source=$4" "status=$5" \
		"failed_hash=$6" "failed_version=$7" "deployment_id=$8" \
		"config_hash=${9-}" "failed_config_hash=${10-}" \
		"updated_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# fg_config_lock / fg_config_unlock -- serialise swaps between the updater (heartbeat
# process) and the entrypoint's crash recovery.
fg_config_lock() {
	exec {_FG_LOCK_FD}>>"$FG_CONFIG_LOCK"
	if ! flock -w 120 "$_FG_LOCK_FD"; then
		fg_log CONFIG ERROR "timed out waiting for $FG_CONFIG_LOCK"
		exec {_FG_LOCK_FD}>&-
		return 1
	fi
}

fg_config_unlock() {
	if [[ -n ${_FG_LOCK_FD-} ]]; then
		exec {_FG_LOCK_FD}>&-
		_FG_LOCK_FD=""
	fi
}

# fg_config_validate FILE -- run `$OTELCOL_BIN validate`; on failure REPLY holds the
# collector's error (single line, at most 1000 chars).
fg_config_validate() {
	local file=$1 out rc=0 line msg="" fallback=""
	out=$(mktemp "$GATEWAY_RUN_DIR/validate.XXXXXX")
	timeout "$CONFIG_VALIDATE_TIMEOUT" env -u REGISTRATION_TOKEN -u OPAMP_TOKEN \
		"$OTELCOL_BIN" validate --config="$file" >"$out" 2>&1 &
	fg_wait_child "$!" || rc=$?
	REPLY=""
	if ((rc != 0)); then
		# the collector's "Error: ..." block (the real collector spreads one error over
		# several lines: "Error: failed to get config: ... the following error(s):", a blank
		# line, then what is wrong), joined into one line up to its closing "collector server
		# run finished" line; else the first line mentioning an error; else the last lines
		local in_error=0
		while IFS= read -r line; do
			if ((in_error)); then
				[[ $line == *"collector server run finished"* ]] && break
				[[ -n ${line//[[:space:]]/} ]] && msg+=" $line"
				continue
			fi
			if [[ $line == Error:* ]]; then
				msg=$line
				in_error=1
				continue
			fi
			if [[ -z $fallback && ${line,,} == *error* ]]; then
				fallback=$line
			fi
		done <"$out"
		[[ -n $msg ]] || msg=$fallback
		if [[ -z $msg ]]; then
			msg=$(tail -n 3 -- "$out" | tr '\n' ' ')
		fi
		((rc == 124)) && msg="validation timed out after ${CONFIG_VALIDATE_TIMEOUT}s ${msg}"
		[[ -n ${msg//[[:space:]]/} ]] || msg="validate exited with status $rc"
		REPLY=${msg:0:1000}
	fi
	rm -f -- "$out"
	return "$rc"
}

# _fg_reload_collector -> 0 reloaded (or no collector running), 1 the collector died
_fg_reload_collector() {
	local pid
	if ! pid=$(fg_collector_pid); then
		fg_log CONFIG INFO "collector not running; the new config is used at its next start"
		return 0
	fi
	kill -HUP "$pid"
	fg_sleep "$CONFIG_APPLY_SETTLE"
	if kill -0 "$pid" 2>/dev/null; then
		fg_log CONFIG INFO "collector (pid $pid) reloaded"
		return 0
	fi
	return 1
}

# fg_config_rollback REASON -- under the lock: restore last_good.yaml as current and
# record the failure of the config being applied (the pending one) or that was current.
fg_config_rollback() {
	local reason=$1 bad_hash bad_version bad_config_hash
	if [[ -f $FG_CONFIG_PENDING ]]; then
		bad_hash=$(fg_state hash "$FG_CONFIG_PENDING")
		bad_version=$(fg_state version "$FG_CONFIG_PENDING")
		bad_config_hash=$(fg_state config_hash "$FG_CONFIG_PENDING")
	else
		bad_hash=$(fg_state hash)
		bad_version=$(fg_state version)
		bad_config_hash=$(fg_state config_hash)
	fi
	[[ -f $FG_CONFIG_CURRENT ]] && fg_copy_file "$FG_CONFIG_CURRENT" "$FG_CONFIG_REJECTED" 0600
	if [[ -f $FG_CONFIG_LAST_GOOD ]]; then
		fg_copy_file "$FG_CONFIG_LAST_GOOD" "$FG_CONFIG_CURRENT" 0600
		_fg_state_write "$FG_CONFIG_STATE" "$(fg_state version "$FG_CONFIG_LAST_GOOD_STATE")" \
			"$(fg_state hash "$FG_CONFIG_LAST_GOOD_STATE")" "$(fg_state source "$FG_CONFIG_LAST_GOOD_STATE")" \
			failed "$bad_hash" "$bad_version" "$(fg_state deployment_id "$FG_CONFIG_LAST_GOOD_STATE")" \
			"$(fg_state config_hash "$FG_CONFIG_LAST_GOOD_STATE")" "$bad_config_hash"
	else
		fg_config_use_local failed "$bad_hash" "$bad_version" "$bad_config_hash"
	fi
	printf '%s\n' "$reason" | fg_write_file "$FG_CONFIG_ERROR" 0600
	rm -f -- "$FG_CONFIG_PENDING"
	fg_log CONFIG ERROR "config version ${bad_version:-?} rolled back to last good: $reason"
}

# fg_config_use_local [STATUS FAILED_HASH FAILED_VERSION FAILED_CONFIG_HASH] -- current.yaml
# := OTELCOL_CONFIG
fg_config_use_local() {
	local hash
	fg_copy_file "$OTELCOL_CONFIG" "$FG_CONFIG_CURRENT" 0600
	hash=$(fg_sha256_file "$FG_CONFIG_CURRENT")
	_fg_state_write "$FG_CONFIG_STATE" "" "$hash" local "${1-}" "${2-}" "${3-}" "" "" "${4-}"
}

# fg_config_apply CANDIDATE VERSION SOURCE HASH DEPLOYMENT_ID CONFIG_HASH -> 10 applied,
# 11 rejected
fg_config_apply() {
	local candidate=$1 version=$2 source=$3 hash=$4 deployment_id=$5 config_hash=$6 rc=0 label
	label="version=${version:-none} source=$source sha256=${hash:0:12}"
	fg_log CONFIG INFO "validating new config ($label)"
	fg_config_validate "$candidate" || rc=$?
	((FG_STOPPING)) && {
		rm -f -- "$candidate"
		return 130
	}
	if ((rc != 0)); then
		mv -f -- "$candidate" "$FG_CONFIG_REJECTED"
		printf '%s\n' "$REPLY" | fg_write_file "$FG_CONFIG_ERROR" 0600
		_fg_state_write "$FG_CONFIG_STATE" "$(fg_state version)" "$(fg_state hash)" "$(fg_state source)" \
			failed "$hash" "$version" "$(fg_state deployment_id)" "$(fg_state config_hash)" "$config_hash"
		fg_log CONFIG ERROR "config rejected by validation, keeping the current one ($label): $REPLY"
		return "$FG_CONFIG_REJECTED_RC"
	fi

	fg_config_lock || return 1
	if [[ -f $FG_CONFIG_CURRENT ]]; then
		fg_copy_file "$FG_CONFIG_CURRENT" "$FG_CONFIG_LAST_GOOD" 0600
		[[ -f $FG_CONFIG_STATE ]] && fg_copy_file "$FG_CONFIG_STATE" "$FG_CONFIG_LAST_GOOD_STATE" 0600
	fi
	# `pending` marks current.yaml as not yet proven: a crash (or a restart of the
	# container) before the reload is confirmed rolls back to last_good.yaml.
	fg_kv_write "$FG_CONFIG_PENDING" "version=$version" "hash=$hash" "source=$source" \
		"config_hash=$config_hash"
	mv -f -- "$candidate" "$FG_CONFIG_CURRENT"
	if ! _fg_reload_collector; then
		fg_config_rollback "the collector exited after reloading config version ${version:-none}"
		fg_config_unlock
		return "$FG_CONFIG_REJECTED_RC"
	fi
	_fg_state_write "$FG_CONFIG_STATE" "$version" "$hash" "$source" applied "" "" "$deployment_id" \
		"$config_hash"
	rm -f -- "$FG_CONFIG_PENDING" "$FG_CONFIG_ERROR"
	fg_config_unlock
	fg_log CONFIG INFO "applied config ($label); previous config kept as $FG_CONFIG_LAST_GOOD"
	return "$FG_CONFIG_APPLIED"
}

# fg_config_update -- one fetch/compare/apply cycle (see the header for exit codes).
fg_config_update() {
	local rc=0 url yaml version source deployment_id candidate hash config_hash
	fg_require_identity CONFIG
	fg_require_backend CONFIG
	fg_ensure_dirs
	if ! fg_load_opamp_token; then
		fg_log CONFIG ERROR "no OpAMP token; run onboard.sh first"
		return 4
	fi
	url=$(fg_api_url "/api/v1/opamp/config/$INSTANCE_ID")
	fg_http GET "$url" opamp || rc=$?
	((rc == 130)) && return 130
	case $FG_HTTP_STATUS in
	200) ;;
	401 | 403 | 404)
		fg_log CONFIG WARN "config fetch rejected: $(fg_http_detail)"
		return 4
		;;
	*)
		fg_log CONFIG WARN "config fetch failed: $(fg_http_detail)"
		return 1
		;;
	esac
	yaml=$(fg_json_get config_yaml <<<"$FG_HTTP_BODY") || yaml=""
	version=$(fg_json_get config_version <<<"$FG_HTTP_BODY") || version=""
	source=$(fg_json_get source <<<"$FG_HTTP_BODY") || source=remote
	deployment_id=$(fg_json_get deployment_id <<<"$FG_HTTP_BODY") || deployment_id=""
	config_hash=$(fg_json_get config_hash <<<"$FG_HTTP_BODY") || config_hash=""
	[[ $version =~ ^[0-9]+$ ]] || version=""
	[[ $config_hash =~ ^[0-9a-f]{64}$ ]] || config_hash=""

	candidate=$(mktemp "$GATEWAY_CONFIG_DIR/.candidate.XXXXXX")
	if [[ $source == base && $APPLY_BASE_CONFIG != true ]]; then
		# No configuration is assigned to this gateway: run the local one (the image's or
		# the one mounted at OTELCOL_CONFIG) rather than the backend's generic base.
		cat -- "$OTELCOL_CONFIG" >"$candidate"
		source=local
		version=""
		deployment_id=""
		config_hash=""
	elif [[ -z ${yaml//[[:space:]]/} ]]; then
		rm -f -- "$candidate"
		fg_log CONFIG WARN "backend returned an empty config (source=$source); ignoring it"
		return 0
	else
		printf '%s\n' "$yaml" >"$candidate"
	fi
	hash=$(fg_sha256_file "$candidate")

	if [[ $hash == "$(fg_state hash)" ]]; then
		rm -f -- "$candidate"
		if [[ $version != "$(fg_state version)" || $source != "$(fg_state source)" ||
			$config_hash != "$(fg_state config_hash)" || ($source != local && $(fg_state status) != applied) ]]; then
			# same content under a new version (or a failed newer one was superseded)
			_fg_state_write "$FG_CONFIG_STATE" "$version" "$hash" "$source" \
				"$([[ $source == local ]] || printf applied)" "" "" "$deployment_id" "$config_hash"
			rm -f -- "$FG_CONFIG_ERROR"
			fg_log CONFIG INFO "config unchanged, now version=${version:-none} source=$source"
			return "$FG_CONFIG_APPLIED"
		fi
		return "$FG_CONFIG_UNCHANGED"
	fi
	if [[ $hash == "$(fg_state failed_hash)" ]]; then
		rm -f -- "$candidate" # already rejected; the failure keeps being reported
		return "$FG_CONFIG_UNCHANGED"
	fi
	fg_config_apply "$candidate" "$version" "$source" "$hash" "$deployment_id" "$config_hash"
}

# fg_config_prepare_startup -- choose the config the collector starts with: the persisted
# remote config if it still validates, else last-good, else the local OTELCOL_CONFIG.
fg_config_prepare_startup() {
	fg_ensure_dirs
	local source
	if [[ -f $FG_CONFIG_PENDING ]]; then
		fg_config_lock || return 1
		fg_config_rollback "the gateway stopped while applying config version $(fg_state version "$FG_CONFIG_PENDING")"
		fg_config_unlock
	fi
	source=$(fg_state source)
	if [[ -f $FG_CONFIG_CURRENT && ($source == remote || $source == base) ]]; then
		if fg_config_validate "$FG_CONFIG_CURRENT"; then
			fg_log CONFIG INFO "starting with the saved config (version=$(fg_state version) source=$source)"
			return 0
		fi
		fg_log CONFIG ERROR "saved config no longer validates: $REPLY"
		fg_config_lock || return 1
		fg_config_fallback "saved config failed validation at startup: $REPLY"
		fg_config_unlock
		return 0
	fi
	if [[ ! -r $OTELCOL_CONFIG ]]; then
		fg_log CONFIG ERROR "OTELCOL_CONFIG $OTELCOL_CONFIG is not readable"
		return 1
	fi
	fg_config_use_local
	fg_log CONFIG INFO "starting with the local config $OTELCOL_CONFIG"
}

# fg_config_fallback REASON -- (lock held) the current config cannot run: go to last-good
# if it differs and validates, else to the local config. Records the failure.
fg_config_fallback() {
	local reason=$1 bad_hash bad_version bad_config_hash
	bad_hash=$(fg_state hash)
	bad_version=$(fg_state version)
	bad_config_hash=$(fg_state config_hash)
	if [[ -f $FG_CONFIG_LAST_GOOD && $(fg_state hash "$FG_CONFIG_LAST_GOOD_STATE") != "$bad_hash" ]] &&
		fg_config_validate "$FG_CONFIG_LAST_GOOD"; then
		fg_config_rollback "$reason"
		return 0
	fi
	if [[ $(fg_state source) == local ]]; then
		fg_log CONFIG ERROR "local config cannot run either: $reason"
		return 0
	fi
	[[ -f $FG_CONFIG_CURRENT ]] && fg_copy_file "$FG_CONFIG_CURRENT" "$FG_CONFIG_REJECTED" 0600
	fg_config_use_local failed "$bad_hash" "$bad_version" "$bad_config_hash"
	printf '%s\n' "$reason" | fg_write_file "$FG_CONFIG_ERROR" 0600
	fg_log CONFIG ERROR "config version ${bad_version:-?} abandoned, running the local config: $reason"
}

# fg_config_recover_after_crash CRASHES -- called by the entrypoint when the collector
# exited unexpectedly. A crash right after a reload rolls back; repeated crashes fall back
# to last-good, then to the local config.
fg_config_recover_after_crash() {
	local crashes=$1
	fg_config_lock || return 1
	if [[ -f $FG_CONFIG_PENDING ]]; then
		fg_config_rollback "the collector exited after reloading config version $(fg_state version "$FG_CONFIG_PENDING")"
	elif ((crashes >= 2)) && [[ $(fg_state source) != local ]]; then
		fg_config_fallback "the collector exited $crashes times with config version $(fg_state version)"
	fi
	fg_config_unlock
}

update_config_main() {
	fg_debug_init
	trap 'fg_err_trap CONFIG' ERR
	fg_install_stop_traps
	local rc=0
	fg_config_update || rc=$?
	case $rc in
	"$FG_CONFIG_UNCHANGED") fg_log CONFIG INFO "config unchanged (version=$(fg_state version) source=$(fg_state source))" ;;
	"$FG_CONFIG_APPLIED" | "$FG_CONFIG_REJECTED_RC") ;;
	esac
	exit "$rc"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	update_config_main "$@"
fi
