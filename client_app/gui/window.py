"""The client's window: settings, the doctor's checks, the buttons, live figures and the log.

Everything here runs in Tk's thread and returns at once. The window polls the controller every
``POLL_MS`` with ``after()``; the controller's threads never touch Tk.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
import tkinter as tk
import webbrowser
from collections.abc import Callable
from pathlib import Path
from tkinter import font as tkfont
from tkinter import ttk
from tkinter.scrolledtext import ScrolledText

from client_app import __version__, userconfig
from client_app.campaign_info import CampaignInfo, win_rate_words
from client_app.controller import (
    Controller,
    ControllerSnapshot,
    DoctorReport,
    StartError,
    boss_name,
    check_settings,
    run_config,
)
from client_app.progress import connection_label_words
from client_app.runner import OFFLINE, PAUSED_FOR_YOU
from client_app.spool import default_spool_root

POLL_MS = 250
LOG_LINES_KEPT = 2000
QUIT_WAIT_S = 20.0  # how long Quit waits for the run to store its partial chunk and close

STATES = {
    "idle": "not started",
    "starting": "starting: connecting to the server and the game",
    "running": "playing",
    "paused": "paused by you: the spool is still being sent",
    "stopping": "stopping: keeping what was not sent yet",
    "stopped": "stopped",
    "failed": "stopped with an error (see Last error)",
}

FIGURES = (
    ("state", "Client"),
    ("connection", "Connection"),
    ("model", "Model"),
    ("steps", "Steps played"),
    ("sps", "Steps per second"),
    ("episodes", "Fights / games played"),
    ("wins", "Wins"),
    ("return", "Your return (last 10)"),
    ("spool", "Chunks waiting to be sent"),
    ("restarts", "Game restarts"),
    ("error", "Last error"),
)


def figures_of(snap: ControllerSnapshot, info: dict | None = None) -> dict[str, str]:
    """The text of every live figure (pure: tested without a display through the window); ``info``: the
    campaign's public figures (client_app.campaign_info), for the reason of a pause."""
    run = snap.run
    values = {key: "–" for key, _ in FIGURES}
    values["state"] = STATES.get(snap.state, snap.state)
    if run is None:
        return values
    if run.connection == "paused" and snap.state == "running":
        values["state"] = "waiting: the campaign's staff paused it (nothing is lost)"
    if run.phase == OFFLINE:
        values["state"] = (
            f"offline: not playing while {run.spool:,} chunks wait for the server; it plays again once the "
            "server is back"
        )
    if run.held_back:  # a cap of the volunteer's holds data back (upload cap, spool full)
        values["state"] = run.held_back
    values["connection"] = connection_label_words(run.connection, {**run.campaign, **(info or {})})
    if run.phase == PAUSED_FOR_YOU and snap.state == "running":  # making way for the person (manners)
        values["state"] = "paused for you: " + "; ".join(run.pause_reasons)
    if run.model_version:
        values["model"] = f"v{run.model_version}"
    else:
        values["model"] = "random moves (no model yet)"
    if run.server_model_version > run.model_version:
        values["model"] += f", server has v{run.server_model_version}"
    values["steps"] = f"{run.steps:,}"
    values["sps"] = f"{run.steps_per_s:,.0f}" if run.phase == "playing" else "0"
    values["episodes"] = f"{run.episodes:,}"
    values["wins"] = f"{run.wins:,}"
    if run.mean_return is not None:
        values["return"] = f"{run.mean_return:,.1f} (latest {run.last_return:,.1f})"
    values["spool"] = f"{run.spool:,}"
    values["restarts"] = f"{run.restarts:,}"
    values["error"] = run.last_error or "none"
    return values


class ClientWindow:
    """The window over one Controller. ``open_url`` opens the campaign page (a web browser)."""

    def __init__(
        self,
        root: tk.Tk,
        *,
        controller: Controller | None = None,
        config_path: Path | None = None,
        open_url: Callable[[str], object] = webbrowser.open,
    ):
        self.root = root
        self.controller = controller or Controller()
        self.config_path = config_path
        self.open_url = open_url
        self.exit_code = 0
        self.closed = False
        self._quit_deadline: float | None = None
        self._doctor_shown: DoctorReport | None = None
        self._campaign_url: str | None = None
        self._last_state = ""
        self._poll_id: str | None = None
        # Settings to save once the server accepts them (a new token or server).
        self._pending_save: userconfig.UserConfig | None = None

        saved = userconfig.load(config_path)
        self.server_var = tk.StringVar(value=saved.server)
        self.token_var = tk.StringVar(value=saved.token)
        self.machine_var = tk.StringVar(value=saved.machine or socket.gethostname())
        self.spool_var = tk.StringVar(value=saved.spool_dir)
        self.show_token = tk.BooleanVar(value=False)
        self.note_var = tk.StringVar(value=saved.token_note if saved.token else "")
        self.message_var = tk.StringVar()
        self.campaign_var = tk.StringVar(value="– (shown once connected)")
        self.boss_var = tk.StringVar(value="–")
        self.win_rate_var = tk.StringVar(value="–")
        self.news_var = tk.StringVar(value="")
        self._info: CampaignInfo | None = None  # the campaign's public figures, once a run knows its campaign
        self.figure_vars = {key: tk.StringVar(value="–") for key, _ in FIGURES}

        root.title(f"SoulsAI client {__version__}")
        root.minsize(760, 600)
        self._build()
        # The client's log messages go to the Log tab, for as long as the window lives.
        self._handler = self.controller.log_handler()
        client_logger = logging.getLogger("client_app")
        self._previous_level = client_logger.level
        client_logger.addHandler(self._handler)
        if client_logger.level == logging.NOTSET or client_logger.level > logging.INFO:
            client_logger.setLevel(logging.INFO)
        root.bind("<Destroy>", self._destroyed, add="+")
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self._show(self.controller.snapshot())
        self._poll_id = root.after(POLL_MS, self._poll)

    # -- layout ------------------------------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        outer = ttk.Frame(root, padding=8)
        outer.grid(row=0, column=0, sticky="nsew")
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)
        outer.columnconfigure(0, weight=1, uniform="half")  # the halves keep their width as texts change
        outer.columnconfigure(1, weight=1, uniform="half")
        outer.rowconfigure(2, weight=1)

        settings = ttk.LabelFrame(outer, text="Your settings (remembered)", padding=6)
        settings.grid(row=0, column=0, sticky="nsew", padx=(0, 6))
        settings.columnconfigure(1, weight=1)
        self.server_entry = self._entry(settings, 0, "Server address", self.server_var)
        self.token_entry = self._entry(settings, 1, "Machine token", self.token_var, show="•")
        ttk.Checkbutton(
            settings, text="show", variable=self.show_token, command=self._toggle_token, takefocus=0
        ).grid(row=1, column=2, sticky="w")
        link_font = tkfont.nametofont("TkDefaultFont").copy()
        link_font.configure(underline=True)
        # First launch: where the token comes from, with a link to the campaigns on the portal.
        self.token_help = tk.Label(
            settings, text="Where do I get a token? Join a campaign on the portal: it shows the token once.",
            fg="#1a56c4", cursor="hand2", font=link_font, wraplength=420, justify="left",
        )  # fmt: skip
        self.token_help.grid(row=2, column=1, columnspan=2, sticky="w")
        self.token_help.bind("<Button-1>", self._open_campaigns)
        self.machine_entry = self._entry(settings, 3, "Machine name", self.machine_var)
        # The spool folder is for the few who need it (a small system disk): under "advanced".
        self.show_advanced = tk.BooleanVar(value=bool(self.spool_var.get()))
        ttk.Checkbutton(
            settings, text="advanced settings", variable=self.show_advanced, command=self._toggle_advanced,
            takefocus=0,
        ).grid(row=4, column=0, columnspan=3, sticky="w")  # fmt: skip
        self.spool_label = ttk.Label(settings, text="Spool folder")
        self.spool_label.grid(row=5, column=0, sticky="w", padx=(0, 8), pady=2)
        self.spool_entry = ttk.Entry(settings, textvariable=self.spool_var, width=44)
        self.spool_entry.grid(row=5, column=1, sticky="ew", pady=2)
        self.spool_hint = ttk.Label(
            settings, text=f"where unsent fights wait; empty: {default_spool_root()}", foreground="#666"
        )
        self.spool_hint.grid(row=6, column=1, columnspan=2, sticky="w")
        self._toggle_advanced()
        ttk.Label(settings, textvariable=self.note_var, foreground="#666").grid(
            row=7, column=0, columnspan=3, sticky="w"
        )

        buttons = ttk.Frame(settings)
        buttons.grid(row=8, column=0, columnspan=3, sticky="w", pady=(6, 0))
        # No button ever holds the keyboard focus: while the client plays, SoulsGym presses keys into
        # the focused window, and Space (the roll key) would press a focused button (docs/soulsgym.md).
        self.doctor_button = self._button(buttons, "Check this machine", self.check)
        self.start_button = self._button(buttons, "Start", self.start)
        self.pause_button = self._button(buttons, "Pause", self.toggle_pause)
        self.stop_button = self._button(buttons, "Stop", self.stop)
        self.quit_button = self._button(buttons, "Quit", self.quit)
        for i, button in enumerate(
            (self.doctor_button, self.start_button, self.pause_button, self.stop_button, self.quit_button)
        ):
            button.grid(row=0, column=i, padx=(0, 4))
        self.message_label = ttk.Label(
            settings, textvariable=self.message_var, foreground="#b00020", wraplength=440
        )
        self.message_label.grid(row=9, column=0, columnspan=3, sticky="w")

        campaign = ttk.LabelFrame(outer, text="Campaign", padding=6)
        campaign.grid(row=1, column=0, sticky="nsew", padx=(0, 6), pady=(6, 0))
        campaign.columnconfigure(1, weight=1)
        ttk.Label(campaign, text="Campaign").grid(row=0, column=0, sticky="w", padx=(0, 8))
        self.campaign_label = ttk.Label(campaign, textvariable=self.campaign_var)
        self.campaign_label.grid(row=0, column=1, sticky="w")
        ttk.Label(campaign, text="Boss").grid(row=1, column=0, sticky="w", padx=(0, 8))
        self.boss_label = ttk.Label(campaign, textvariable=self.boss_var)
        self.boss_label.grid(row=1, column=1, sticky="w")
        ttk.Label(campaign, text="Agent wins").grid(row=2, column=0, sticky="w", padx=(0, 8))
        self.win_rate_label = ttk.Label(campaign, textvariable=self.win_rate_var)
        self.win_rate_label.grid(row=2, column=1, sticky="w")
        ttk.Label(campaign, text="News").grid(row=3, column=0, sticky="nw", padx=(0, 8))
        self.news_label = ttk.Label(campaign, textvariable=self.news_var, wraplength=420, justify="left")
        self.news_label.grid(row=3, column=1, sticky="w")
        self.link_label = tk.Label(campaign, text="", fg="#1a56c4", cursor="hand2", font=link_font)
        self.link_label.grid(row=4, column=0, columnspan=2, sticky="w")
        self.link_label.bind("<Button-1>", self._open_campaign)

        figures = ttk.LabelFrame(outer, text="Live", padding=6)
        figures.grid(row=0, column=1, rowspan=2, sticky="nsew")
        figures.columnconfigure(1, weight=1)
        self.figure_labels: dict[str, ttk.Label] = {}
        for row, (key, title) in enumerate(FIGURES):
            ttk.Label(figures, text=title).grid(row=row, column=0, sticky="nw", padx=(0, 10), pady=1)
            label = ttk.Label(figures, textvariable=self.figure_vars[key], wraplength=330, justify="left")
            label.grid(row=row, column=1, sticky="w", pady=1)
            self.figure_labels[key] = label

        notebook = ttk.Notebook(outer)
        notebook.grid(row=2, column=0, columnspan=2, sticky="nsew", pady=(6, 0))
        self.log_text = ScrolledText(
            notebook, height=12, wrap="word", state="disabled", font=("TkFixedFont", 9)
        )
        self.checks_text = ScrolledText(notebook, height=12, wrap="word", state="disabled")
        self.checks_text.tag_configure("ok", foreground="#137333")
        self.checks_text.tag_configure("bad", foreground="#b00020")
        self.checks_text.tag_configure("fix", foreground="#444", lmargin1=24, lmargin2=24)
        notebook.add(self.log_text, text="Log")
        notebook.add(self.checks_text, text="Checks")
        self.notebook = notebook
        self._set_text(self.checks_text, "Press “Check this machine” to see whether it can take part.\n")

    def _button(self, parent: ttk.Frame, text: str, action: Callable[[], None]) -> ttk.Button:
        """A button that takes no keyboard focus and leaves none behind on a widget that keys could press."""

        def pressed() -> None:
            action()
            if not self.closed:
                try:
                    self.root.focus_set()  # the toplevel: Space and Return do nothing there
                except tk.TclError:  # the window is going away (Quit)
                    pass

        return ttk.Button(parent, text=text, command=pressed, takefocus=0)

    def _entry(self, parent: ttk.Frame, row: int, label: str, var: tk.StringVar, **kw) -> ttk.Entry:
        ttk.Label(parent, text=label).grid(row=row, column=0, sticky="w", padx=(0, 8), pady=2)
        entry = ttk.Entry(parent, textvariable=var, width=44, **kw)
        entry.grid(row=row, column=1, sticky="ew", pady=2)
        return entry

    def _toggle_token(self) -> None:
        self.token_entry.configure(show="" if self.show_token.get() else "•")

    def _toggle_advanced(self) -> None:
        for widget in (self.spool_label, self.spool_entry, self.spool_hint):
            widget.grid() if self.show_advanced.get() else widget.grid_remove()

    def campaigns_url(self) -> str | None:
        """The portal's campaign list on the server typed in; None while there is no usable address."""
        try:
            return check_settings(self.server_var.get(), "x")[0].rstrip("/") + "/campaigns/"
        except StartError:
            return None

    def _open_campaigns(self, _event: object = None) -> None:
        url = self.campaigns_url()
        if url is None:
            self.message_var.set("Type the server's address first: its Campaigns page gives you a token.")
            return
        threading.Thread(target=self.open_url, args=(url,), name="soulsai-browser", daemon=True).start()

    # -- actions -----------------------------------------------------------------------------------

    def _settings(self) -> userconfig.UserConfig:
        # The caps have no fields here (soulsai-client run --save sets them): saving keeps the file's.
        saved = userconfig.load(self.config_path)
        return userconfig.UserConfig(
            server=self.server_var.get().strip(),
            token=self.token_var.get().strip(),
            machine=self.machine_var.get().strip(),
            spool_dir=self.spool_var.get().strip(),
            max_upload_kbps=saved.max_upload_kbps,
            spool_max_mb=saved.spool_max_mb,
        )

    def start(self) -> None:
        self.message_var.set("")
        settings = self._settings()
        try:
            server, _ = check_settings(settings.server, settings.token)
        except StartError as exc:
            self.message_var.set(str(exc))
            return
        settings = dataclasses.replace(settings, server=server)
        self.server_var.set(server)
        if self._info is not None:  # a new run may play another campaign on another server
            self._info.stop()
            self._info = None
        saved = userconfig.load(self.config_path)
        # A new token (or server) is remembered only once the server has accepted it: a typo must not
        # replace the saved token that works. The rest is remembered now.
        if (settings.server, settings.token) == (saved.server, saved.token):
            self._remember(settings)
        else:
            self._remember(dataclasses.replace(settings, server=saved.server, token=saved.token))
            self._pending_save = settings
        try:
            self.controller.start(
                run_config(
                    server=settings.server,
                    token=settings.token,
                    machine=settings.machine or socket.gethostname(),
                    spool_dir=settings.spool_dir or None,
                    manners=userconfig.manners_config(saved),  # set with soulsai-client run --save
                    max_upload_kbps=saved.max_upload_kbps,
                    spool_max_mb=saved.spool_max_mb,
                )
            )
        except StartError as exc:
            self.message_var.set(str(exc))
            return
        self.notebook.select(self.log_text)
        self._show(self.controller.snapshot())

    def _remember(self, settings: userconfig.UserConfig) -> None:
        try:
            saved = userconfig.save(settings, self.config_path)
            self.note_var.set(saved.token_note if saved.token else "")
        except OSError as exc:  # the run can go on without remembering the settings
            self.message_var.set(f"cannot save the settings: {exc}")

    def toggle_pause(self) -> None:
        if self.controller.snapshot().state == "paused":
            self.controller.resume()
        else:
            self.controller.pause()

    def stop(self) -> None:
        self.controller.stop()

    def check(self) -> None:
        self.message_var.set("")
        settings = self._settings()
        if self.controller.run_doctor(server=settings.server, token=settings.token):
            self._set_text(self.checks_text, "Checking this machine…\n")
            self._doctor_shown = None
            self.notebook.select(self.checks_text)

    def quit(self) -> None:
        """Stop the run (the spool stays on disk) and close the window once it has ended."""
        if self._quit_deadline is not None:
            return
        self._quit_deadline = time.monotonic() + QUIT_WAIT_S
        if self.controller.running:
            self.message_var.set("Stopping: keeping what was not sent yet…")
            self.controller.stop()
        self._poll()

    def _open_campaign(self, _event: object = None) -> None:
        url = self._campaign_url
        if url:
            # A browser can take a moment to start: never in Tk's thread.
            threading.Thread(target=self.open_url, args=(url,), name="soulsai-browser", daemon=True).start()

    # -- polling -----------------------------------------------------------------------------------

    def _poll(self) -> None:
        if self.closed:
            return
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        snap = self.controller.snapshot()
        self._show(snap)
        self._append_log(self.controller.take_lines())
        if self._quit_deadline is not None and (
            not self.controller.running or time.monotonic() > self._quit_deadline
        ):
            self._close()
            return
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def _show(self, snap: ControllerSnapshot) -> None:
        run = snap.run
        if run is not None and run.campaign and self._pending_save is not None:
            self._remember(self._pending_save)  # the server welcomed this token: it works
            self._pending_save = None
        if run is not None and run.campaign and self._info is None and run.campaign.get("slug"):
            self._info = CampaignInfo(self.server_var.get().strip(), str(run.campaign["slug"]))
        info = self._info.latest() if self._info is not None else {}
        if (
            self._info is not None
            and run is not None
            and info
            and (run.connection == "paused") != (info.get("status") == "paused")
        ):
            self._info.refresh()  # paused or resumed since the last answer: fetch the reason now
        if info:
            _set(self.win_rate_var, win_rate_words(info) or "no boss in this campaign")
            _set(self.news_var, info.get("news") or "none")
        for key, text in figures_of(snap, info).items():
            _set(self.figure_vars[key], text)
        if run is not None and run.campaign:
            campaign = run.campaign
            _set(
                self.campaign_var,
                f"{campaign.get('name')}  ({campaign.get('env_id')}, {campaign.get('algorithm')})",
            )
            _set(self.boss_var, boss_name(campaign))
            url = snap.campaign_url
            if url and url != self._campaign_url:
                self._campaign_url = url
                self.link_label.configure(text=f"Open the campaign page: {url}")
        busy = snap.state in ("starting", "running", "paused", "stopping")
        self.start_button.state(["disabled"] if busy else ["!disabled"])
        self.stop_button.state(
            ["!disabled"] if snap.state in ("starting", "running", "paused") else ["disabled"]
        )
        self.pause_button.state(["!disabled"] if snap.state in ("running", "paused") else ["disabled"])
        self.pause_button.configure(text="Resume" if snap.state == "paused" else "Pause")
        for entry in (self.server_entry, self.token_entry, self.machine_entry, self.spool_entry):
            entry.state(["disabled"] if busy else ["!disabled"])
        self.doctor_button.state(["disabled"] if snap.doctor.running else ["!disabled"])
        if snap.state != self._last_state:
            if snap.state == "failed" and run is not None:
                message = run.last_error or "the client stopped with an error: see the log"
                if self._pending_save is not None:
                    message += " (the settings you saved before were kept)"
                    self._pending_save = None
                self.message_var.set(message)
            self._last_state = snap.state
        if (
            snap.doctor is not self._doctor_shown
            and not snap.doctor.running
            and (snap.doctor.checks or snap.doctor.error)
        ):
            self._doctor_shown = snap.doctor
            self._show_checks(snap.doctor)

    def _show_checks(self, report: DoctorReport) -> None:
        text = self.checks_text
        text.configure(state="normal")
        text.delete("1.0", "end")
        if report.error:
            text.insert("end", report.error + "\n", "bad")
        for check in report.checks:
            text.insert("end", ("✓ " if check.ok else "✗ ") + check.what + "\n", "ok" if check.ok else "bad")
            if not check.ok and check.fix:
                text.insert("end", "fix: " + check.fix + "\n", "fix")
        failed = report.failed
        text.insert("end", "\nall checks passed: this machine is ready\n" if not failed else
                    f"\n{failed} check(s) failed: see the fixes above\n")  # fmt: skip
        text.configure(state="disabled")

    def _append_log(self, lines: list[str]) -> None:
        if not lines:
            return
        log = self.log_text
        at_end = log.yview()[1] >= 0.999
        log.configure(state="normal")
        log.insert("end", "\n".join(lines) + "\n")
        excess = int(log.index("end-1c").split(".")[0]) - LOG_LINES_KEPT
        if excess > 0:
            log.delete("1.0", f"{excess + 1}.0")
        log.configure(state="disabled")
        if at_end:
            log.see("end")

    @staticmethod
    def _set_text(widget: ScrolledText, text: str) -> None:
        widget.configure(state="normal")
        widget.delete("1.0", "end")
        widget.insert("end", text)
        widget.configure(state="disabled")

    def _close(self) -> None:
        snap = self.controller.snapshot()  # the run may have ended since the last poll
        self.closed = True
        self.exit_code = snap.exit_code if snap.exit_code is not None else 0
        self.root.destroy()

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is self.root:
            self.closed = True
            if self._info is not None:
                self._info.stop()
            client_logger = logging.getLogger("client_app")
            client_logger.removeHandler(self._handler)
            client_logger.setLevel(self._previous_level)


def _set(var: tk.StringVar, text: str) -> None:
    """Set a variable only when its text changes (every set redraws the widgets that show it)."""
    if var.get() != text:
        var.set(text)
