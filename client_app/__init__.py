"""SoulsAI volunteer client.

Plays a campaign's environment with the campaign's current policy and streams the experience to the
SoulsAI server. The wire protocol (``client_app.protocol``), the space specs (``client_app.spaces``)
and the policy networks (``client_app.policy``) are the contract shared with the server: they are
defined here, once, and the server imports them.
"""

__version__ = "0.1.0"
