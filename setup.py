"""routerwatch agent: installed on the router as the `routerwatch` package."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"',
                    (HERE / "agent" / "routerwatch" / "__init__.py").read_text()).group(1)

setup(
    name="routerwatch",
    version=VERSION,
    description="Security agent for OpenWrt routers: login attacks, outbound connections, "
                "firmware integrity, reported over MQTT",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-2.0-only",
    package_dir={"": "agent"},
    packages=find_packages("agent"),
    python_requires=">=3.11",
    install_requires=["paho-mqtt>=1.6,<3"],
    extras_require={"fast": ["ujson"]},
    entry_points={"console_scripts": ["routerwatch-agent = routerwatch.cli:main"]},
)
