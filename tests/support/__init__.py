"""What tests share besides fixtures: helpers every test module may import (conftest.py files hold only fixtures).

- `process`: waiting with a deadline, free ports, terminals, metrics text, the repository root.
- `s3`: the S3 server a run talks to and bucket housekeeping.
- `weed`: a private SeaweedFS server (for runs without one, and for tests that stop the server).
- `mount`: a real `fsgateway -f` mount.
- `checker`, `syncd`: a checker pipeline and syncd processes.
- `faultproxy`: an HTTP proxy in front of S3 that injects faults.
"""
