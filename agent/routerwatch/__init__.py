"""routerwatch: a security agent for OpenWrt routers."""

# The one place the version lives: setup.py, the collector and openwrt/Makefile read it from here.
__version__ = "0.1.0"
