"""A stand-in for ``client_app.gamewin``'s Windows calls: a Dark Souls III that tests set up as they need.

It answers what ``WindowsGame`` reads (process, executable and version, window, layouts) from its
fields and records what the client asks it to do (focus, restore, set the speed), so that a test can
assert what was, and was not, done to the game.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from client_app.gamewin import GameWindow


@dataclass
class FakeGame:
    windows: bool = True
    pid: int | None = 4242
    executable: Path | None = Path(
        "C:/Program Files (x86)/Steam/steamapps/common/DARK SOULS III/Game/DarkSoulsIII.exe"
    )
    version: str | None = "1.15.2.0"
    width: int = 800
    height: int = 450
    scale: float | None = 1.0
    minimised: bool = False
    focused: bool = True
    has_window: bool = True
    layouts: list[str] = field(default_factory=lambda: ["00000409"])
    paused: bool = False  # the speed hack at 0, as a killed client leaves it
    focus_allowed: bool = True  # whether Windows lets the client bring the game to the front
    calls: list[str] = field(default_factory=list)

    def game_pid(self) -> int | None:
        return self.pid

    def game_executable(self) -> Path | None:
        return self.executable if self.pid else None

    def file_version(self, path: Path) -> str | None:
        return self.version

    def find_window(self) -> GameWindow | None:
        if not (self.pid and self.has_window):
            return None
        return GameWindow(7, self.width, self.height, self.minimised, self.focused, self.scale)

    def focus_window(self) -> bool:
        self.calls.append("focus")
        if self.focus_allowed and self.pid:
            self.focused, self.minimised = True, False
        return self.focused

    def restore_window(self) -> bool:
        self.calls.append("restore")
        self.minimised = False
        return True

    def keyboard_layouts(self) -> list[str]:
        return list(self.layouts)

    def set_game_speed(self, speed: float) -> bool:
        self.calls.append(f"speed {speed:g}")
        if not self.pid:
            return False
        self.paused = speed == 0
        return True

    def touched(self) -> list[str]:
        """What the client did to the game (reads are not recorded)."""
        return list(self.calls)
