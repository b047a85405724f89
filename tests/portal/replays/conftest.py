from tests.portal.relay.test_evaluation import arena  # noqa: F401  (a running arena campaign and a token)
