"""Ray, shared by the layers that spread work over a cluster: sandbox executions and sampling engines.

`connect` joins (or starts) a cluster once per process; `ActorFleet` keeps a set of actors alive
and feeds them items with back-pressure, running an item again elsewhere when its actor or node
dies. Ray itself is optional and imported on use.
"""

from codeloop.distributed.cluster import connect, import_ray, infrastructure_errors
from codeloop.distributed.fleet import ActorFleet

__all__ = ["ActorFleet", "connect", "import_ray", "infrastructure_errors"]
