"""xstilts: search over intermediate-task mixtures and schedules for cross-lingual transfer.

The four code folders of the repository install as ``xstilts.search``, ``xstilts.trainer``,
``xstilts.spaces`` and ``xstilts.dashboards``.
"""

__version__ = "0.1.0"
