#!/bin/bash
# User data of the comparison instance (Amazon Linux 2023). The CDK stack prepends the
# download of the project source asset to $SHPC_SRC_ZIP. Installs Python 3.11 and this
# project with the training extra into /opt/serverless-hpc/venv, which the ec2 target's runner
# command uses. Runs once, as root, at first boot; the log is /var/log/shpc-bootstrap.log.
set -euo pipefail
exec > >(tee -a /var/log/shpc-bootstrap.log) 2>&1

SHPC_HOME=/opt/serverless-hpc
SHPC_SRC_ZIP=${SHPC_SRC_ZIP:-$SHPC_HOME/src.zip}

dnf install -y python3.11 python3.11-pip unzip
mkdir -p "$SHPC_HOME/src" "$SHPC_HOME/data"
unzip -o -q "$SHPC_SRC_ZIP" -d "$SHPC_HOME/src"
python3.11 -m venv "$SHPC_HOME/venv"
"$SHPC_HOME/venv/bin/pip" install --no-cache-dir --upgrade pip
"$SHPC_HOME/venv/bin/pip" install --no-cache-dir "$SHPC_HOME/src[train,aws]"
"$SHPC_HOME/venv/bin/python" -c "import serverless_hpc, tensorflow, ai_edge_litert"
touch "$SHPC_HOME/READY"
echo "serverless-hpc bootstrap complete"
