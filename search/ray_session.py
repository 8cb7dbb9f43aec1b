"""The driver's Ray session: connect to a cluster or start a local Ray, and what it offers.

    --ray-address | $RAY_ADDRESS ─► ray.init(address)      (a cluster; ``ray job submit`` sets it)
    neither                     ─► ray.init(num_cpus, dashboard on 127.0.0.1)   (dies with the driver)

Either way the driver's job carries ``job_name`` in its metadata (the search run's name): the
dashboard's Jobs page shows it in its Name column. A job that ``ray job submit`` started is listed
under the name its submission gave (``--metadata-json '{"job_name": ...}'``, else none): Ray lets
the submission's metadata win over the driver's.
"""

from __future__ import annotations

import os

__all__ = ["connect_ray", "alive_nodes", "ray_dashboard_url", "token_auth_on", "dashboard_login_hint"]


def connect_ray(address: str | None, cpus: int | None = None, job_name: str | None = None) -> bool:
    """Connect to ``address`` (or ``$RAY_ADDRESS``) or start a local Ray, the driver's job named
    ``job_name``; True if we started it."""
    import ray
    from ray.job_config import JobConfig

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    job_config = JobConfig(metadata={"job_name": job_name} if job_name else {})
    if address:
        ray.init(address=address, log_to_driver=False, job_config=job_config)
    else:
        ray.init(num_cpus=cpus or max(2, os.cpu_count() or 2), include_dashboard=True, dashboard_host="127.0.0.1",
                 log_to_driver=False, job_config=job_config)
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


def token_auth_on() -> bool:
    """Does the connected Ray ask for a token? ``ray.init`` sets ``RAY_AUTH_MODE=token`` in this
    process when it turns token authentication on (Ray 2.60's default for a local Ray)."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def dashboard_login_hint(url: str) -> str:
    """How to get past the dashboard's "Authentication Token Required" form (empty without token auth):
    the page takes no token in its URL, only in that form (or as a Bearer header for the HTTP API)."""
    if not token_auth_on():
        return ""
    return (f"the page asks for a token: paste what `ray get-auth-token` prints (HTTP API: "
            f"curl -H \"Authorization: Bearer $(ray get-auth-token)\" {url}/api/jobs/)")
