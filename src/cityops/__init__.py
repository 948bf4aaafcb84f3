"""CityOps — city operations and governance center (城市运行和治理中心)."""

__version__ = "0.1.0"
