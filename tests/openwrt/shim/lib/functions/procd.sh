# TEST DOUBLE of OpenWrt's /lib/functions/procd.sh (package procd): instead of talking to procd
# over ubus, every call is appended to $SHIM_PROCD_LOG, one line per call, the function name and
# its arguments separated by the ASCII unit separator (\037), so the test can read back exactly
# what the init script asked procd to do.
# procd_running answers from $SHIM_PROCD_RUNNING: "1" means the service has a running instance.

: "${SHIM_PROCD_LOG:?the test sets SHIM_PROCD_LOG}"

_procd_record() {
	local arg line="$1"
	shift
	for arg in "$@"; do
		line="$line$(printf '\037')$arg"
	done
	printf '%s\n' "$line" >> "$SHIM_PROCD_LOG"
}

procd_lock() { return 0; }
procd_open_service() { _procd_record procd_open_service "$@"; }
procd_close_service() {
	# like procd: the service's triggers are collected when the service is sent
	if type service_triggers >/dev/null 2>&1; then
		service_triggers
	fi
	_procd_record procd_close_service "$@"
}
procd_open_instance() { _procd_record procd_open_instance "$@"; }
procd_set_param() { _procd_record procd_set_param "$@"; }
procd_append_param() { _procd_record procd_append_param "$@"; }
procd_close_instance() { _procd_record procd_close_instance "$@"; }
procd_add_reload_trigger() { _procd_record procd_add_reload_trigger "$@"; }
procd_send_signal() { _procd_record procd_send_signal "$@"; }
procd_kill() { _procd_record procd_kill "$@"; }
procd_running() {
	_procd_record procd_running "$@"
	[ "$SHIM_PROCD_RUNNING" = 1 ]
}
