"""The driver's Ray session: connect to a cluster or start a local Ray, and what it offers.

    --ray-address | $RAY_ADDRESS ─► ray.init(address)      (a cluster; ``ray job submit`` sets it)
    neither                     ─► ray.init(num_cpus, dashboard on 127.0.0.1)   (dies with the driver)
"""

from __future__ import annotations

import os

__all__ = ["connect_ray", "alive_nodes", "ray_dashboard_url"]


def connect_ray(address: str | None, cpus: int | None = None) -> bool:
    """Connect to ``address`` (or ``$RAY_ADDRESS``) or start a local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus or max(2, os.cpu_count() or 2), include_dashboard=True, dashboard_host="127.0.0.1",
                 log_to_driver=False)
    return True


def alive_nodes() -> int:
    """How many nodes of the connected Ray cluster are alive."""
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def ray_dashboard_url() -> str | None:
    """The connected Ray's dashboard URL (with its scheme); None without a dashboard."""
    try:
        import ray

        url = ray.get_runtime_context().worker.node.address_info.get("webui_url")  # type: ignore[attr-defined]
    except Exception:
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"
