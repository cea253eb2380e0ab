# TEST DOUBLE of OpenWrt's /lib/functions.sh (package base-files), for running routerwatch's
# init script, uci-defaults and maintainer scripts on a machine without OpenWrt.
# Only the functions those scripts use, with the documented behaviour:
#   config_load <pkg>      nothing when $IPKG_INSTROOT is set; else evaluates `uci export`
#                          (here: the uci stand-in in ../bin, honouring $UCI_CONFIG_DIR), which
#                          calls config/option/list below, which call the config_cb/option_cb/
#                          list_cb hooks
#   config_get, config_get_bool, config_set, config_foreach, config_list_foreach, append,
#   list_contains, reset_cb
#   default_postinst / default_prerm: what the feed's generated postinst/prerm call.
# Differences, all because this is not a router: a "live" system is the directory $SHIM_ROOT
# (not /), and init scripts are run through this directory's etc/rc.common with busybox ash.

N="
"
NO_EXPORT=1
LIST_SEP=" "
# the shim directory (etc/, lib/, bin/) and the directory standing in for a live router's /
: "${SHIM_DIR:?the test sets SHIM_DIR}" "${SHIM_ROOT:?the test sets SHIM_ROOT}"

# busybox-static's ash runs its own applets before anything on $PATH, so the logger double
# (../bin/logger, which writes to $SHIM_SYSLOG instead of the machine's syslog) is wired in here
logger() {
	"$SHIM_DIR/bin/logger" "$@"
}

append() {
	local var="$1" value="$2" sep="${3:- }"
	eval "$var=\"\${$var:+\${$var}\${value:+\$sep}}\$value\""
}

list_contains() {
	local var="$1" str="$2" val
	eval "val=\" \${$var} \""
	[ "${val%% $str *}" != "$val" ]
}

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}
reset_cb

package() {
	return 0
}

config() {
	local cfgtype="$1" name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION="$name"
	config_set "$name" TYPE "$cfgtype"
	config_cb "$cfgtype" "$name"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
	option_cb "$varname" "$*"
}

list() {
	local varname="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${varname}" "$*" "$LIST_SEP"
	list_cb "$varname" "$*"
}

config_set() {
	eval "CONFIG_${1}_${2}=\"\$3\""
}

config_get() {
	# config_get <var> <section> <option> [default]  |  config_get <section> <option>
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) return 0 ;;
	esac
	if [ -z "$3" ]; then
		eval "printf '%s\n' \"\${CONFIG_${1}_${2}:-\${4}}\""
	else
		eval "$1=\"\${CONFIG_${2}_${3}:-\${4}}\""
	fi
}

config_get_bool() {
	local _value
	config_get _value "$2" "$3" "$4"
	case "$_value" in
	1|on|true|yes|enabled) _value=1 ;;
	0|off|false|no|disabled) _value=0 ;;
	*) _value="$4" ;;
	esac
	eval "$1=\"\$_value\""
}

config_foreach() {
	local function="$1" type="$2" section cfgtype
	[ "$#" -ge 1 ] && shift
	[ "$#" -ge 1 ] && shift
	for section in $CONFIG_SECTIONS; do
		config_get cfgtype "$section" TYPE
		[ -n "$type" ] && [ "$cfgtype" != "$type" ] && continue
		eval "$function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section="$1" option="$2" function="$3" len value i=1
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -n "$len" ] || return 0
	while [ "$i" -le "$len" ]; do
		config_get value "$section" "${option}_ITEM$i"
		eval "$function \"\$value\" \"\$@\""
		i=$((i + 1))
	done
}

config_load() {
	[ -n "$IPKG_INSTROOT" ] && return 0
	local data
	CONFIG_SECTIONS=""
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=""
	data="$("$SHIM_DIR/bin/uci" ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -S -n export "$1" 2>/dev/null)"
	[ -n "$data" ] && eval "$data"
	[ -n "$CONFIG_SECTION" ] && config_cb
	return 0
}

# init scripts of a package: rc.common enable in an image root, enable + start on a live system
_shim_run_initscripts() {
	local root="$1" filelist="$2" live_action="$3" image_action="$4" i
	for i in $(grep -s "^/etc/init.d/" "$filelist"); do
		if [ -n "$root" ]; then
			busybox ash "$root/etc/rc.common" "$root$i" "$image_action"
		else
			for action in $live_action; do
				busybox ash "$SHIM_DIR/etc/rc.common" "$SHIM_ROOT$i" "$action"
			done
		fi
	done
}

default_postinst() {
	local root="$IPKG_INSTROOT" pkgname
	pkgname="$(basename "${1%.*}")"
	# the package database of the image root, or of the live system ($SHIM_ROOT here)
	local info="${root:-$SHIM_ROOT}/usr/lib/opkg/info"
	local filelist="$info/$pkgname.list" i ret=0 live="enable start"
	[ "$PKG_UPGRADE" = 1 ] && live="start"
	if [ -z "$root" ]; then
		# live: the package's uci-defaults run now (and go when they succeed), then uci commit
		if grep -m1 -q -s "^/etc/uci-defaults/" "$filelist"; then
			for i in $(grep -s "^/etc/uci-defaults/" "$filelist"); do
				( [ -f "$SHIM_ROOT$i" ] && cd "$(dirname "$SHIM_ROOT$i")" && . "$SHIM_ROOT$i" ) \
					&& rm -f "$SHIM_ROOT$i"
			done
			"$SHIM_DIR/bin/uci" ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} commit
		fi
	fi
	if [ -f "$info/$pkgname.postinst-pkg" ]; then
		( . "$info/$pkgname.postinst-pkg" )
		ret=$?
	fi
	_shim_run_initscripts "$root" "$filelist" "$live" enable
	return $ret
}

default_prerm() {
	local root="$IPKG_INSTROOT" pkgname
	pkgname="$(basename "${1%.*}")"
	local info="${root:-$SHIM_ROOT}/usr/lib/opkg/info"
	local filelist="$info/$pkgname.list" ret=0 live="disable stop"
	[ "$PKG_UPGRADE" = 1 ] && live="stop"
	if [ -f "$info/$pkgname.prerm-pkg" ]; then
		( . "$info/$pkgname.prerm-pkg" )
		ret=$?
	fi
	_shim_run_initscripts "$root" "$filelist" "$live" disable
	return $ret
}
