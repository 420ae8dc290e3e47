"""The ``tke-route-eni`` executable. ``tke_route_eni`` is installed stand-alone
into the CNI bin dir: it imports nothing from this project."""
