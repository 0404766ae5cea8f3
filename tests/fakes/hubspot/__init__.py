from tests.fakes.hubspot.server import FakeHubSpot

__all__ = ["FakeHubSpot"]
