"""The Redis layout: every key the service writes, its type and TTL, and the code that reads and
writes it. One module per thing stored, each listing its keys in its docstring:

    keys.py            the prefix, the hash-tag rule, and the declaration of every key
    sessions.py        access and refresh tokens, sessions, rotation and reuse detection
    user_snapshot.py   the public user, so an authenticated request needs no database query
    order_cache.py     order snapshots and list pages, with the count of open order writes
    email_codes.py     emailed sign-in codes, their resend window and wrong tries
    login_failures.py  the lockouts: wrong passwords by email, wrong second-factor codes by user
    address_limits.py  the refresh limit's moving window, by client address (counted by the rotation)
    two_factor.py      the second factor's spent challenge tokens and used TOTP steps
    passkey_challenges.py  the challenges of passkey ceremonies, each answered once
    account_events.py  how often a rate-limited login is written to the account's history

Nothing outside this package builds a key. Redis holds only what a login or a database read can
rebuild: losing it logs everyone out and lifts lockouts, and loses nothing else.

Lua scripts are Python strings beside the function that runs them, not .lua files: each is short,
and its KEYS and ARGV order is set by that function's call, which the reader then sees on the same
screen. lua.py runs them (EVALSHA, registered once per app).
"""
