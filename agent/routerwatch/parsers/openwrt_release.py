"""KEY='value' files: /etc/openwrt_release, /etc/os-release (pure: text in, dict out).

These are shell fragments written by the build (include/version.mk); on a compromised router they
are attacker-writable, so only the plain assignment shapes are accepted, every length is capped,
and nothing is ever evaluated.
"""
import re

MAX_INPUT_BYTES = 16 * 1024
MAX_KEYS = 64
MAX_VALUE_CHARS = 256

# KEY='single quoted' | KEY="double quoted" | KEY=bare ; optional trailing comment
_LINE_RE = re.compile(
    r"\A(?P<key>[A-Za-z_][A-Za-z0-9_]{0,63})="
    r"(?:'(?P<single>[^'\n]*)'|\"(?P<double>(?:[^\"\\\n]|\\.)*)\"|(?P<bare>[^\s'\"\\;&|`$]*))"
    r"[ \t]*(?:#[^\n]*)?\Z")
_ESCAPE_RE = re.compile(r"\\(.)")


def parse_release(text):
    """{KEY: value} of the well-formed assignment lines; anything else is skipped.

    `text` may be str or bytes (decoded as UTF-8 with replacement). Later keys win, as in sh.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[:MAX_INPUT_BYTES]).decode("utf-8", "replace")
    else:
        text = text[:MAX_INPUT_BYTES]
    values = {}
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.match(line)
        if match is None:
            continue
        key = match.group("key")
        if match.group("single") is not None:
            value = match.group("single")
        elif match.group("double") is not None:
            value = _ESCAPE_RE.sub(r"\1", match.group("double"))
        else:
            value = match.group("bare")
        if key not in values and len(values) >= MAX_KEYS:
            continue
        values[key] = _printable(value)[:MAX_VALUE_CHARS]
    return values


def _printable(value):
    return "".join(ch if ch.isprintable() else "?" for ch in value)


def release_version(release):
    """'23.05.3 r23809-234f1a2efa' style key of what the firmware claims to be."""
    return "%s %s" % (release.get("DISTRIB_RELEASE", ""), release.get("DISTRIB_REVISION", ""))
