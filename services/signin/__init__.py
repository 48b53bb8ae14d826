"""Signing in: each way in proves factors, and policy.py alone decides what they unlock.

    passwords.py      proves "pwd": argon2id hashing, and the password lockout by email
    mailbox.py        proves "otp": codes mailed to the address, and the first proof of an address
    authenticator.py  proves "totp" or "recovery": the TOTP secret, recovery codes, their lockout
    accounts.py       keeps the user rows that sign-in reads, locks and creates
    sessions.py       keeps the token pairs and their sessions: start, refresh, renew, log out
    policy.py         decides: from the factors proven and the account's settings, a token pair
                      or the two-factor challenge; and whether a token is fresh enough for a
                      sensitive operation (step-up)
    ways.py           the ways in: password, mailed code, reset, the second step, reauthentication
    registration.py   the ways an account begins: register, or register and confirm by mail
    operators.py      what the flask CLI does to accounts: unlock, revoke, delete

The factors import nothing of one another; policy sits above them, the ways above policy.
"""
