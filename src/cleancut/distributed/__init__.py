"""Large jobs on Ray: the local batch's pipeline, spread over a Ray cluster.

``pip install 'cleancut[ray]'``; see ``docs/ray.md``. One module per job:

* :mod:`.uris`: paths and fsspec URIs (which are allowed, reading, atomic writes);
* :mod:`.jobs`: the plan (every input and its output, named as the local batch names them)
  and the rows answered without model work;
* :mod:`.manifest`: the JSON Lines record of a run, which makes it resumable;
* :mod:`.actor`: :class:`CutoutActor`, one loaded model per Ray worker;
* :mod:`.driver`: :func:`run_ray`, which plans, runs the actor pool and records each row;
* :mod:`.video`: :func:`run_ray_video`, a long clip cut in chunks on the cluster and joined.

The naming and input-protection rules are :mod:`cleancut.planning`'s, shared with the local
batch; each image's stages are :mod:`cleancut.batch`'s.
"""

from __future__ import annotations

from .actor import CutoutActor
from .driver import run_ray
from .jobs import RayJob, RayResult, plan_ray_jobs
from .manifest import MANIFEST_NAME, manifest_location, read_manifest
from .video import RayVideoError, RayVideoResult, VideoChunkActor, run_ray_video

__all__ = [
    "MANIFEST_NAME",
    "CutoutActor",
    "RayJob",
    "RayResult",
    "RayVideoError",
    "RayVideoResult",
    "VideoChunkActor",
    "manifest_location",
    "plan_ray_jobs",
    "read_manifest",
    "run_ray",
    "run_ray_video",
]
