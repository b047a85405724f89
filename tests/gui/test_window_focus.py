"""The window's buttons never take the keyboard focus (issue 15, item 5).

While the client plays, SoulsGym presses keys into the focused window; with one of the client's
buttons focused, its roll key (Space) would press that button. The buttons are ``takefocus=0`` and
leave the focus on the toplevel (where Space and Return do nothing), whether clicked or invoked.
"""

from __future__ import annotations

import pytest

from client_app.controller import Controller

pytestmark = pytest.mark.gui


def test_no_button_takes_or_keeps_the_keyboard_focus(xvfb, tk_root, tmp_path):
    from client_app.gui.window import ClientWindow

    controller = Controller()
    window = ClientWindow(tk_root, controller=controller, config_path=tmp_path / "client.json")
    tk_root.update()
    buttons = (window.doctor_button, window.pause_button, window.stop_button, window.start_button)
    for button in buttons:
        assert str(button.cget("takefocus")) == "0", button.cget("text")
    # Keyboard traversal (Tab) never lands on a button.
    tk_root.focus_force()
    window.token_entry.focus_set()
    tk_root.update()
    seen = set()
    widget = window.token_entry
    for _ in range(20):
        widget = widget.tk_focusNext() or widget
        seen.add(str(widget))
    assert not seen & {str(b) for b in (*buttons, window.quit_button)}

    for button in buttons:
        window.token_entry.focus_force()
        tk_root.update()
        # A real click: press and release on the button.
        button.event_generate("<Enter>")
        button.event_generate("<ButtonPress-1>", x=5, y=5)
        button.event_generate("<ButtonRelease-1>", x=5, y=5)
        tk_root.update()
        focused = tk_root.focus_get()
        assert focused not in buttons, button.cget("text")
        if button.instate(["!disabled"]):  # pressed: the focus went to the toplevel, not left on the entry
            assert focused is None or focused == tk_root, (button.cget("text"), focused)
        # Space now presses nothing: no button was invoked by it.
        if focused is not None:
            focused.event_generate("<KeyPress-space>")
            tk_root.update()
    assert controller.wait_doctor(60)
    assert controller.snapshot().doctor.checks  # the clicks did press the buttons
