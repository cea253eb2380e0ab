#!/bin/sh
# Run by the packages feed's CI on the target once the package is installed:
# $1 is the package name, $2 its version (PKG_VERSION-PKG_RELEASE).

[ "$1" = routerwatch ] || exit 0

routerwatch-agent --version | grep -Fx "routerwatch ${2%-*}" || {
	echo "routerwatch-agent --version does not print ${2%-*}"
	exit 1
}

# the agent starts up far enough to load and validate a config (all defaults)
config="$(mktemp)"
echo '{}' > "$config"
routerwatch-agent --config "$config" --check-config || {
	echo "routerwatch-agent --check-config refused the default config"
	rm -f "$config"
	exit 1
}
rm -f "$config"
