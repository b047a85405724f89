"""A client that minds its manners: it makes way when the person at the machine needs it.

Each source of "the person is busy" is a small module with one implementation per OS:

- ``idle``: time since the last keyboard or mouse input (X11's XScreenSaver extension; Windows'
  ``GetLastInputInfo``, less the agent's own key presses in a SoulsGym fight);
- ``programs``: configured programs running (``/proc`` on Linux; a Toolhelp snapshot on Windows);
- ``hours``: configured hours of the day, local time (pure).

``policy`` combines what they read into a verdict (paused, with the reasons) and is pure; ``watcher``
polls the sources in a thread about once a second, so the env loop only reads the verdict.
``client_app.runner`` pauses on it, separately from the volunteer's own Pause button.
See docs/client.md, "Pausing for you".
"""

from client_app.manners.hours import Hours, HoursError, parse_hours
from client_app.manners.policy import DEFAULT_IDLE_MINUTES, MannersConfig, Policy, Reading, Verdict
from client_app.manners.watcher import Watcher

__all__ = [
    "DEFAULT_IDLE_MINUTES",
    "Hours",
    "HoursError",
    "MannersConfig",
    "Policy",
    "Reading",
    "Verdict",
    "Watcher",
    "parse_hours",
]
