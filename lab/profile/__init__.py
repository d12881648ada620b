"""``lab profile``: a user's own Django project measured on both builds, endpoint by endpoint.

One module per stage, in the order a run goes through them:

- ``spec``: the endpoints file (``[project]`` and ``[[endpoint]]`` tables) into frozen dataclasses;
- ``env``: the project's requirements in one environment per interpreter, with the packages
  that have no wheel or re-enable the GIL on import named before anything is measured;
- ``prepare``: imports checked, throwaway database migrated, the setup command's login
  cookie, each endpoint's status checked and its work counted (``site/``: the settings
  overlay and application wrapper that run inside the project's environment);
- ``measure``: WSGI and ASGI servers on both interpreters under paired rounds of load;
- ``run``: the above in order, and the run directory (``profile.json``, pyperf JSON);
- ``report``: ``profile.json`` into ``report.md``, a section per endpoint.
"""

from __future__ import annotations

from lab.profile.measure import ProfilePlan
from lab.profile.run import check_before_building, run_profile
from lab.profile.spec import load_profile_spec

__all__ = ["ProfilePlan", "check_before_building", "load_profile_spec", "run_profile"]
