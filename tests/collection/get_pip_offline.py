"""Stand-in for pip's get-pip.py, for `ansible-test --venv` (tests/collection).

ansible-test bootstraps pip into each virtual environment it creates with a
get-pip.py script it downloads from ci-files.testing.ansible.com, and looks for
it first in ~/.ansible/test/cache/get_pip_<version>.py. Classroom and CI
networks often reach PyPI but not that host; the collection tests put this
script there (under a HOME of their own) instead. It does what get-pip.py does
with the standard library's ensurepip and PyPI: install pip, then run
`pip install --upgrade --force-reinstall <arguments>` (ansible-test passes the
pinned pip version, pip==24.2 for ansible-core 2.19).
"""

import ensurepip
import os
import subprocess
import sys

# get-pip.py's own options: this environment gets neither setuptools nor wheel.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)  # sets PIP_CONFIG_FILE=/dev/null in this process
# pip with the machine's own pip configuration (index, certificates).
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall", *args],
                         env=environment))
