"""pkirepo's LDAP front-end: the CA repository as a read-only directory (RFC 4511, RFC 4523).

- `directory`: immutable snapshots of entries (`Directory`), swapped whole (`DirectoryHolder`).
- `dn`, `schema`, `filters`, `requests`, `ber`: DNs, attribute descriptions with `;binary`,
  filter evaluation, the SearchRequest decoder and the response encoder (all pure).
- `server`: the protocol on Twisted (limits, flow control, read-only answers).
- `listener`: `start_ldap(settings, provider) -> LdapListener` and `await listener.stop()`,
  on Twisted's asyncio reactor in the running loop; `install_reactor()` for entry points.
- `build`, `service`: the directory made from config and the store, and the cleanup context
  `pkirepo serve` runs (`setup(app, settings, listen=...)`).

Importing this package imports neither Twisted nor aiohttp; its modules do.  The name
shadows python-ldap's `ldap`: never install python-ldap into pkirepo's environment.
"""
