# shellcheck shell=bash
# Shared helpers for the FlowGate gateway scripts. Sourced, never executed.
#
# Contract for every function here:
#   * a token (registration or OpAMP) is never printed, logged, traced (`set -x`) or
#     passed on a command line (argv is world-readable in /proc). Tokens are read and
#     used only inside functions that switch xtrace off locally (`local -; set +x`), and
#     reach curl through a pipe (`-H @<(...)`), never through argv.
#   * state files are written atomically (temp file in the same directory + rename),
#     secrets with mode 0600.
#   * logs go to stderr, one line each, tagged (`[ONBOARD]`, `[HEARTBEAT]`, `[CONFIG]`,
#     `[GATEWAY]`) so that `docker compose logs gateway | grep HEARTBEAT` works.

if [[ -n ${_FG_LIB_LOADED-} ]]; then
	return 0
fi
_FG_LIB_LOADED=1

# ---------------------------------------------------------------------------------------
# Settings (environment variables; see gateway/README.md for the full table)
# ---------------------------------------------------------------------------------------
: "${GATEWAY_STATE_DIR:=/var/lib/otelcol}"
: "${OPAMP_TOKEN_FILE:=$GATEWAY_STATE_DIR/opamp_token}"
: "${GATEWAY_CONFIG_DIR:=$GATEWAY_STATE_DIR/config}"
: "${GATEWAY_RUN_DIR:=$GATEWAY_STATE_DIR/run}"
: "${HEARTBEAT_INTERVAL:=30}"
: "${CONFIG_POLL_INTERVAL:=$HEARTBEAT_INTERVAL}"
: "${CONFIG_APPLY_SETTLE:=2}"
: "${CONFIG_VALIDATE_TIMEOUT:=60}"
: "${APPLY_BASE_CONFIG:=false}"
: "${BACKOFF_INITIAL_MS:=1000}"
: "${BACKOFF_MAX_MS:=60000}"
: "${HTTP_CONNECT_TIMEOUT:=5}"
: "${HTTP_TIMEOUT:=15}"
: "${OTELCOL_BIN:=/usr/local/bin/otelcol-contrib}"
: "${OTELCOL_CONFIG:=/etc/otelcol/otel-collector-config.yaml}"
: "${COLLECTOR_METRICS_URL:=http://127.0.0.1:8888/metrics}"
: "${GATEWAY_VERSION:=0.1.0}"
: "${JSON_TOOL:=auto}"

FG_STOPPING=0
FG_CHILD_PID=""

# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------

# fg_log TAG LEVEL MESSAGE... -- one line on stderr. Known token values are redacted as a
# second line of defence (messages are built without tokens in the first place).
fg_log() {
	local -
	set +x
	local tag=$1 level=$2 ts msg
	shift 2
	msg=$*
	msg=${msg//$'\n'/ }
	if [[ -n ${REGISTRATION_TOKEN-} ]]; then
		msg=${msg//"$REGISTRATION_TOKEN"/[REDACTED]}
	fi
	if [[ -n ${OPAMP_TOKEN-} ]]; then
		msg=${msg//"$OPAMP_TOKEN"/[REDACTED]}
	fi
	if [[ -n ${_FG_OPAMP_TOKEN-} ]]; then
		msg=${msg//"$_FG_OPAMP_TOKEN"/[REDACTED]}
	fi
	ts=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
	printf '%s [%s] %s %s\n' "$ts" "$tag" "$level" "$msg" >&2
}

# fg_debug_init -- FLOWGATE_DEBUG=1 turns on xtrace in every gateway script. Tokens stay
# out of the trace because the functions that touch them switch xtrace off locally.
fg_debug_init() {
	if [[ ${FLOWGATE_DEBUG:-0} == 1 ]]; then
		set -x
	fi
}

fg_die() {
	local tag=$1 code=$2
	shift 2
	fg_log "$tag" ERROR "$*"
	exit "$code"
}

# fg_err_trap TAG -- report the failing command (text, not expanded values) on ERR.
fg_err_trap() {
	local rc=$? tag=$1
	fg_log "$tag" ERROR "unexpected failure (exit $rc) at ${BASH_SOURCE[1]-?}:${BASH_LINENO[0]-?}: ${BASH_COMMAND}"
}

# ---------------------------------------------------------------------------------------
# Signals and interruptible waiting
# ---------------------------------------------------------------------------------------

fg_on_stop_signal() {
	FG_STOPPING=1
	if [[ -n ${FG_CHILD_PID-} ]]; then
		kill -TERM "$FG_CHILD_PID" 2>/dev/null || true
	fi
}

fg_install_stop_traps() {
	trap fg_on_stop_signal TERM INT
}

# fg_wait_child PID -- wait for a background child; returns its exit status. A trapped
# signal interrupts `wait`; the handler has already forwarded TERM to the child.
fg_wait_child() {
	local pid=$1 rc=0
	FG_CHILD_PID=$pid
	if ((FG_STOPPING)); then # the signal came before FG_CHILD_PID was set
		kill -TERM "$pid" 2>/dev/null || true
	fi
	wait "$pid" || rc=$?
	while kill -0 "$pid" 2>/dev/null; do
		# interrupted by a signal while the child is still finishing
		rc=0
		wait "$pid" || rc=$?
	done
	FG_CHILD_PID=""
	return "$rc"
}

# fg_sleep SECONDS -- sleep that returns immediately when a stop signal arrives.
fg_sleep() {
	if ((FG_STOPPING)); then
		return 0
	fi
	sleep "$1" &
	fg_wait_child "$!" || true
}

# fg_ms_to_s MS -> REPLY="S.mmm"
fg_ms_to_s() {
	printf -v REPLY '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"
}

# fg_backoff_ms ATTEMPT -> REPLY = delay in ms. Exponential (initial * 2^(attempt-1), capped
# at BACKOFF_MAX_MS) with "equal jitter": half fixed, half random, so a fleet that lost its
# backend at the same moment does not come back in lockstep.
fg_backoff_ms() {
	local attempt=$1 delay=$BACKOFF_INITIAL_MS i half
	for ((i = 1; i < attempt; i++)); do
		delay=$((delay * 2))
		if ((delay >= BACKOFF_MAX_MS)); then
			delay=$BACKOFF_MAX_MS
			break
		fi
	done
	((delay > BACKOFF_MAX_MS)) && delay=$BACKOFF_MAX_MS
	half=$((delay / 2))
	REPLY=$((half + ((RANDOM << 15 | RANDOM) % (half + 1))))
}

# ---------------------------------------------------------------------------------------
# Files and state
# ---------------------------------------------------------------------------------------

fg_ensure_dirs() {
	local d
	for d in "$GATEWAY_STATE_DIR" "$GATEWAY_CONFIG_DIR" "$GATEWAY_RUN_DIR" "$(dirname -- "$OPAMP_TOKEN_FILE")"; do
		if [[ ! -d $d ]]; then
			(umask 077 && mkdir -p -- "$d")
		fi
	done
}

# fg_write_file PATH MODE < content -- atomic replace (temp file + rename in the same dir).
fg_write_file() {
	local path=$1 mode=$2 dir tmp
	dir=$(dirname -- "$path")
	tmp=$(mktemp "$dir/.$(basename -- "$path").XXXXXX")
	if ! { cat >"$tmp" && chmod "$mode" "$tmp" && mv -f -- "$tmp" "$path"; }; then
		rm -f -- "$tmp"
		return 1
	fi
}

# fg_copy_file SRC DST MODE -- atomic copy.
fg_copy_file() {
	fg_write_file "$2" "$3" <"$1"
}

# fg_kv_get FILE KEY -> prints value of KEY=value (no eval; values are single-line).
fg_kv_get() {
	local file=$1 key=$2 k v
	[[ -f $file ]] || return 1
	while IFS='=' read -r k v || [[ -n $k ]]; do
		if [[ $k == "$key" ]]; then
			printf '%s' "$v"
			return 0
		fi
	done <"$file"
	return 1
}

# fg_kv_write FILE KEY=VALUE... -- atomically replace FILE with the given pairs.
fg_kv_write() {
	local file=$1 pair
	shift
	for pair in "$@"; do
		printf '%s\n' "${pair//$'\n'/ }"
	done | fg_write_file "$file" 0600
}

fg_sha256_file() {
	local sum
	sum=$(sha256sum -- "$1")
	printf '%s' "${sum%% *}"
}

# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------

_FG_OPAMP_TOKEN=""

# fg_load_opamp_token -- the token file is the source of truth once it exists; OPAMP_TOKEN
# (environment) seeds it when it does not. Sets _FG_OPAMP_TOKEN; returns 1 if none.
fg_load_opamp_token() {
	local -
	set +x
	_FG_OPAMP_TOKEN=""
	if [[ -s $OPAMP_TOKEN_FILE ]]; then
		IFS= read -r _FG_OPAMP_TOKEN <"$OPAMP_TOKEN_FILE" || true
		if [[ -n ${OPAMP_TOKEN-} && $OPAMP_TOKEN != "$_FG_OPAMP_TOKEN" && -z ${_FG_ENV_MISMATCH_WARNED-} ]]; then
			_FG_ENV_MISMATCH_WARNED=1
			fg_log ONBOARD WARN "OPAMP_TOKEN differs from the saved token in $OPAMP_TOKEN_FILE; using the saved one (delete the file to use OPAMP_TOKEN)"
		fi
	elif [[ -n ${OPAMP_TOKEN-} ]]; then
		_FG_OPAMP_TOKEN=$OPAMP_TOKEN
		fg_save_opamp_token || return 1
		fg_log ONBOARD INFO "saved OPAMP_TOKEN from the environment to $OPAMP_TOKEN_FILE ($(fg_token_fingerprint))"
	fi
	[[ -n $_FG_OPAMP_TOKEN ]]
}

# fg_save_opamp_token -- write _FG_OPAMP_TOKEN to OPAMP_TOKEN_FILE, 0600, atomically.
fg_save_opamp_token() {
	local -
	set +x
	local old_umask
	old_umask=$(umask)
	umask 077
	printf '%s' "$_FG_OPAMP_TOKEN" | fg_write_file "$OPAMP_TOKEN_FILE" 0600
	umask "$old_umask"
}

# fg_token_fingerprint -- first 12 hex chars of sha256(OpAMP token): lets people correlate
# tokens in logs without revealing them.
fg_token_fingerprint() {
	local -
	set +x
	local sum
	sum=$(printf '%s' "$_FG_OPAMP_TOKEN" | sha256sum)
	printf 'token sha256:%s' "${sum:0:12}"
}

# fg_have_registration_token -- [[ -n $REGISTRATION_TOKEN ]] without exposing it to xtrace.
fg_have_registration_token() {
	local -
	set +x
	[[ -n ${REGISTRATION_TOKEN-} ]]
}

# fg_token_is_safe KIND -- reject tokens that could break an HTTP header or a YAML string.
fg_token_is_safe() {
	local -
	set +x
	local value
	case $1 in
	registration) value=${REGISTRATION_TOKEN-} ;;
	opamp) value=$_FG_OPAMP_TOKEN ;;
	*) return 1 ;;
	esac
	[[ -n $value && $value != *[[:space:][:cntrl:]\"\\]* ]]
}

# ---------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------

FG_HTTP_STATUS=""
FG_HTTP_BODY=""
FG_HTTP_ERROR=""
FG_HTTP_RETRY_AFTER=""

fg_api_url() {
	printf '%s%s' "${BACKEND_URL%/}" "$1"
}

# fg_http METHOD URL AUTH [JSON_BODY]
#   AUTH: none | registration | opamp (the token is taken from REGISTRATION_TOKEN or the
#   loaded OpAMP token, never from an argument).
# Sets FG_HTTP_STATUS ("000" when no response), FG_HTTP_BODY, FG_HTTP_ERROR,
# FG_HTTP_RETRY_AFTER. Returns 0 when an HTTP response was received (any status), 1 on a
# transport error, 130 when interrupted by a stop signal.
fg_http() {
	local -
	set +x
	local method=$1 url=$2 auth=$3 body=${4-} token="" out rc=0 line
	local -a args
	FG_HTTP_STATUS="000"
	FG_HTTP_BODY=""
	FG_HTTP_ERROR=""
	FG_HTTP_RETRY_AFTER=""
	case $auth in
	registration) token=${REGISTRATION_TOKEN-} ;;
	opamp) token=$_FG_OPAMP_TOKEN ;;
	none) ;;
	*)
		fg_log GATEWAY ERROR "fg_http: unknown auth kind '$auth'"
		return 1
		;;
	esac
	out=$(mktemp "$GATEWAY_RUN_DIR/http.XXXXXX")
	args=(
		--silent --show-error --globoff
		--connect-timeout "$HTTP_CONNECT_TIMEOUT" --max-time "$HTTP_TIMEOUT"
		--request "$method"
		--header 'Accept: application/json'
		--user-agent "flowgate-gateway/$GATEWAY_VERSION"
		--output "$out"
		--write-out '%{http_code}|%header{retry-after}|%{errormsg}'
	)
	if [[ -n ${CA_CERT_FILE-} ]]; then
		args+=(--cacert "$CA_CERT_FILE")
	fi
	if [[ -n $body ]]; then
		args+=(--header 'Content-Type: application/json' --data-binary @-)
	fi
	if [[ -n $token ]]; then
		curl "${args[@]}" --header @<(printf 'Authorization: Bearer %s\n' "$token") -- "$url" \
			<<<"$body" >"$out.meta" 2>/dev/null &
	else
		curl "${args[@]}" -- "$url" <<<"$body" >"$out.meta" 2>/dev/null &
	fi
	fg_wait_child "$!" || rc=$?
	IFS= read -r line <"$out.meta" || true
	FG_HTTP_BODY=$(<"$out")
	rm -f -- "$out" "$out.meta"
	if ((FG_STOPPING)); then
		FG_HTTP_ERROR="interrupted"
		return 130
	fi
	FG_HTTP_STATUS=${line%%|*}
	line=${line#*|}
	FG_HTTP_RETRY_AFTER=${line%%|*}
	FG_HTTP_ERROR=${line#*|}
	[[ $FG_HTTP_STATUS =~ ^[0-9]{3}$ ]] || FG_HTTP_STATUS="000"
	if [[ $FG_HTTP_STATUS == 000 ]]; then
		[[ -n $FG_HTTP_ERROR ]] || FG_HTTP_ERROR="curl exit status $rc"
		return 1
	fi
	return 0
}

# fg_http_detail -- a short, single-line description of the last response for logs.
fg_http_detail() {
	local detail=""
	if [[ $FG_HTTP_STATUS == 000 ]]; then
		printf '%s' "${FG_HTTP_ERROR:-no response}"
		return 0
	fi
	detail=$(fg_json_get detail <<<"$FG_HTTP_BODY" 2>/dev/null) || detail=""
	if [[ -z $detail ]]; then
		detail=${FG_HTTP_BODY:0:200}
	fi
	printf 'HTTP %s: %s' "$FG_HTTP_STATUS" "${detail:0:300}"
}

# fg_is_transient_status -- statuses worth retrying with backoff.
fg_is_transient_status() {
	case $1 in
	000 | 408 | 425 | 429 | 500 | 502 | 503 | 504) return 0 ;;
	*) return 1 ;;
	esac
}

# fg_retry_delay_ms ATTEMPT -> REPLY: backoff, but never shorter than Retry-After (seconds).
fg_retry_delay_ms() {
	fg_backoff_ms "$1"
	if [[ $FG_HTTP_RETRY_AFTER =~ ^[0-9]+$ ]]; then
		local ra=$((FG_HTTP_RETRY_AFTER * 1000))
		((ra > BACKOFF_MAX_MS)) && ra=$BACKOFF_MAX_MS
		((ra > REPLY)) && REPLY=$ra
	fi
	return 0
}

# ---------------------------------------------------------------------------------------
# JSON (jq when present, else python3, else a small pure-bash reader)
# ---------------------------------------------------------------------------------------

fg_json_tool() {
	if [[ -n ${_FG_JSON_TOOL-} ]]; then
		printf '%s' "$_FG_JSON_TOOL"
		return 0
	fi
	case $JSON_TOOL in
	jq | python3 | bash) _FG_JSON_TOOL=$JSON_TOOL ;;
	auto)
		if command -v jq >/dev/null 2>&1; then
			_FG_JSON_TOOL=jq
		elif command -v python3 >/dev/null 2>&1; then
			_FG_JSON_TOOL=python3
		else
			_FG_JSON_TOOL=bash
		fi
		;;
	*)
		fg_log GATEWAY WARN "unknown JSON_TOOL '$JSON_TOOL', using the bash reader"
		_FG_JSON_TOOL=bash
		;;
	esac
	printf '%s' "$_FG_JSON_TOOL"
}

# fg_json_get KEY < JSON -- print the value of a top-level KEY: strings decoded, numbers
# and booleans as written. Returns 1 when the key is missing or null, 2 on invalid JSON.
fg_json_get() {
	local key=$1 json tool
	json=$(cat)
	tool=$(fg_json_tool)
	case $tool in
	jq)
		local out rc=0
		out=$(jq -j --arg k "$key" \
			'if type == "object" and .[$k] != null then (.[$k] | if type == "string" then . else tojson end) else empty end' \
			<<<"$json" 2>/dev/null) || rc=$?
		((rc == 0)) || return 2
		[[ -n $out ]] || return 1
		printf '%s' "$out"
		;;
	python3)
		PYTHONIOENCODING=utf-8 python3 -c '
import json, sys
try:
    data = json.loads(sys.stdin.read())
except ValueError:
    sys.exit(2)
value = data.get(sys.argv[1]) if isinstance(data, dict) else None
if value is None or value == "":
    sys.exit(1)
sys.stdout.write(value if isinstance(value, str) else json.dumps(value))
' "$key" <<<"$json"
		;;
	*)
		_fg_json_get_bash "$key" "$json" || return
		[[ -n $REPLY ]] || return 1
		printf '%s' "$REPLY"
		;;
	esac
}

# _fg_json_unescape RAW -> REPLY: decode the escapes of a JSON string body. Escaped
# backslashes are parked on \x01 (a raw control character cannot occur in a JSON string)
# so that every other escape can be replaced globally, in linear time.
_fg_json_unescape() {
	local s=$1 park=$'\x01' out="" hex lo cp c
	if [[ $s != *\\* ]]; then
		REPLY=$s
		return 0
	fi
	s=${s//\\\\/$park}
	s=${s//\\n/$'\n'}
	s=${s//\\t/$'\t'}
	s=${s//\\r/$'\r'}
	s=${s//\\b/$'\b'}
	s=${s//\\f/$'\f'}
	s=${s//\\\"/\"}
	s=${s//\\\//\/}
	while [[ $s == *\\u* ]]; do
		out+=${s%%\\u*}
		s=${s#*\\u}
		hex=${s:0:4}
		s=${s:4}
		[[ $hex =~ ^[0-9A-Fa-f]{4}$ ]] || return 2
		cp=$((16#$hex))
		if ((cp >= 0xD800 && cp <= 0xDBFF)) && [[ ${s:0:2} == '\u' && ${s:2:4} =~ ^[dD][c-fC-F][0-9A-Fa-f]{2}$ ]]; then
			lo=$((16#${s:2:4}))
			cp=$((0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)))
			s=${s:6}
		fi
		((cp == 0)) && continue # bash strings cannot hold NUL
		printf -v hex '%08x' "$cp"
		printf -v c '%b' "\\U$hex"
		out+=$c
	done
	s=$out$s
	REPLY=${s//$park/\\}
}

# _fg_json_get_bash KEY JSON -> REPLY. A tokenizer that tracks nesting depth so that only
# top-level keys match. Objects/arrays as values are returned verbatim (not needed here).
_fg_json_get_bash() {
	{ local LC_ALL=C.UTF-8; } 2>/dev/null
	local key=$1 s=$2 depth=0 name rest
	local re_ws='^[[:space:]]+'
	local re_str='^"(([^"\\]|\\.)*)"'
	local re_scalar='^(-?[0-9][0-9.eE+-]*|true|false|null)'
	REPLY=""
	while [[ -n $s ]]; do
		case ${s:0:1} in
		' ' | $'\t' | $'\n' | $'\r')
			[[ $s =~ $re_ws ]]
			s=${s:${#BASH_REMATCH[0]}}
			;;
		'{' | '[')
			depth=$((depth + 1))
			s=${s:1}
			;;
		'}' | ']')
			depth=$((depth - 1))
			s=${s:1}
			;;
		',' | ':') s=${s:1} ;;
		'"')
			[[ $s =~ $re_str ]] || return 2
			name=${BASH_REMATCH[1]}
			s=${s:${#BASH_REMATCH[0]}}
			if ((depth == 1)); then
				rest=${s#"${s%%[![:space:]]*}"}
				if [[ ${rest:0:1} == : ]]; then
					if [[ $name == *\\* ]]; then
						_fg_json_unescape "$name" || return 2
						name=$REPLY
						REPLY=""
					fi
					if [[ $name == "$key" ]]; then
						rest=${rest:1}
						rest=${rest#"${rest%%[![:space:]]*}"}
						if [[ $rest =~ $re_str ]]; then
							_fg_json_unescape "${BASH_REMATCH[1]}" || return 2
							return 0
						elif [[ $rest =~ $re_scalar ]]; then
							[[ ${BASH_REMATCH[1]} == null ]] && return 1
							REPLY=${BASH_REMATCH[1]}
							return 0
						elif [[ $rest == [\{\[]* ]]; then
							REPLY=$rest # an object or array: not decoded
							return 0
						fi
						return 2
					fi
				fi
			fi
			;;
		*)
			[[ $s =~ $re_scalar ]] || return 2
			s=${s:${#BASH_REMATCH[0]}}
			;;
		esac
	done
	return 1
}

# fg_json_str VALUE -> prints a JSON string literal.
fg_json_str() {
	local s=$1 out="" c i
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	s=${s//$'\t'/\\t}
	if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
		for ((i = 0; i < ${#s}; i++)); do
			c=${s:i:1}
			if [[ $c == [$'\x01'-$'\x1f'] ]]; then
				printf -v c '\\u%04x' "'$c"
			fi
			out+=$c
		done
		s=$out
	fi
	printf '"%s"' "$s"
}

# ---------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------

# fg_require_identity -- INSTANCE_ID (default: hostname) and GATEWAY_NAME (default:
# INSTANCE_ID). INSTANCE_ID goes into URL paths, so it is restricted to a safe alphabet.
fg_require_identity() {
	local tag=$1
	if [[ -z ${INSTANCE_ID-} ]]; then
		INSTANCE_ID=$(hostname 2>/dev/null || true)
		[[ -n $INSTANCE_ID ]] || fg_die "$tag" 2 "INSTANCE_ID is not set and the hostname is unknown"
		fg_log "$tag" WARN "INSTANCE_ID is not set; using the hostname '$INSTANCE_ID' (set INSTANCE_ID for a stable identity)"
	fi
	if [[ ! $INSTANCE_ID =~ ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}$ ]]; then
		fg_die "$tag" 2 "INSTANCE_ID must match [A-Za-z0-9][A-Za-z0-9._:@-]* (max 255 chars)"
	fi
	: "${GATEWAY_NAME:=$INSTANCE_ID}"
	export INSTANCE_ID GATEWAY_NAME
}

fg_require_backend() {
	local tag=$1
	[[ -n ${BACKEND_URL-} ]] || fg_die "$tag" 2 "BACKEND_URL is not set"
	[[ $BACKEND_URL =~ ^https?:// ]] || fg_die "$tag" 2 "BACKEND_URL must start with http:// or https://"
}

# fg_otel_version -> prints the collector version ("0.126.0") or "unknown".
fg_otel_version() {
	local out
	out=$("$OTELCOL_BIN" --version 2>/dev/null) || out=""
	if [[ $out =~ ([0-9]+\.[0-9]+\.[0-9]+[^[:space:]]*) ]]; then
		printf '%s' "${BASH_REMATCH[1]}"
	else
		printf 'unknown'
	fi
}

fg_collector_pid() {
	local pid="" file=$GATEWAY_RUN_DIR/collector.pid
	[[ -r $file ]] || return 1
	IFS= read -r pid <"$file" || true
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	printf '%s' "$pid"
}
