"""NGSI-LD (ETSI GS CIM 009) for FIWARE tools, mapped onto the twin's gRPC API.

`problems` renders NGSI-LD's error shape, `entities` converts entities both ways,
`query` reads `q`, `georel` and the temporal parameters; `gateway.routers.ngsi_ld`
serves them at `/ngsi-ld/v1`. The covered part of the specification is listed in
docs/ngsi-ld.md.
"""
