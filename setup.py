"""Package layout: the repository's top-level folders become subpackages of `llmsched`.

The project metadata lives in pyproject.toml; this file only maps folders to package names, so
that the distribution installs exactly one import name, `llmsched`.
"""

from setuptools import find_packages, setup

SUBPACKAGES = ("sim", "policies", "theory", "proofs_check", "experiments")

package_dir = {"llmsched": "llmsched", "llmsched.data": "data"}
packages = ["llmsched", "llmsched.data"]
for folder in SUBPACKAGES:
    package_dir[f"llmsched.{folder}"] = folder
    packages.append(f"llmsched.{folder}")
    packages.extend(f"llmsched.{folder}.{sub}" for sub in find_packages(folder))

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"llmsched.data": ["**/*"]},
    include_package_data=False,
)
