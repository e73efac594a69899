"""pkirepo's LDAP front-end: the CA repository as a read-only directory (RFC 4511, RFC 4523).

- `directory`: immutable snapshots of entries (`Directory`), swapped whole (`DirectoryHolder`);
  `entry`: one entry with its attributes pre-encoded, and a search's attribute selection.
- `dn`, `schema`, `filters`, `requests`, `ber`: DNs, attribute descriptions with `;binary`,
  filter evaluation, the requests and the SearchRequest decoder, the response encoder and
  message framing (all pure).
- `operations`: bind, search, compare, extended operations and the refusal of writes, as pure
  functions of a snapshot; `errors`: the errors they raise, each with its resultCode, and the
  one table from exception to LDAPResult (`codes`: result codes and OIDs).
- `decode`: the requests off the hot path decoded with ldaptor.
- `server`: the protocol on Twisted (framing, limits, flow control, slicing, dispatch).
- `listener`: `start_ldap(settings, provider) -> LdapListener` and `await listener.stop()`,
  on Twisted's asyncio reactor in the running loop; `install_reactor()` for entry points.
- `settings`: `LdapSettings` (the listener, its limits and the `Layout` of the tree), read
  once from `[ldap]` and the `ldap_*` keys of each `[[ca]]`.
- `build`, `service`: the directory made from config and the store, and the front-end's
  `setup(app, settings, *, store)` that the composition root calls.
- `subscribers`: the directory as served, a snapshot of the CA and CRL entries with the
  subscriber entries read from the store; `names`, `name_index`: the cn and mail of each
  certificate, and the store's name index filled from them.

Importing this package imports neither Twisted nor aiohttp; its modules do.  The name
shadows python-ldap's `ldap`: never install python-ldap into pkirepo's environment.
"""
