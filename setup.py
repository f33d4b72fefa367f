"""Map the top-level layer folders to `redshank.<layer>` (ARCHITECTURE.md section 1)."""

from pathlib import Path

from setuptools import setup

LAYERS = ("actors", "storage", "protocol", "cluster", "tools")
ROOT = Path(__file__).parent

packages: list[str] = []
package_dir: dict[str, str] = {}
for layer in LAYERS:
    for init in sorted((ROOT / layer).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        name = "redshank." + ".".join(rel.parts)
        packages.append(name)
        package_dir[name] = rel.as_posix()

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={name: ["*.json", "py.typed"] for name in packages},
)
