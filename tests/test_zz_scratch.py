import pytest, requests
from concurrent.futures import ThreadPoolExecutor
from tests.helpers import AUTH, PASSWORD
from tests.live import Gunicorn

pytestmark = pytest.mark.live

@pytest.fixture(scope="module")
def server(app):
    with Gunicorn(workers=2, threads=16, auth__rate_limits__login_per_ip="10000/minute") as live:
        yield live

def post(server, path, **kw):
    return requests.post(server.url + path, timeout=60, **kw)

def test_reauth_lockout_race(app, server):
    pair = post(server, f"{AUTH}/register", json={"email": "zz1@example.com", "password": PASSWORD}).json()["data"]
    h = {"Authorization": "Bearer " + pair["access_token"]}
    pws = ["wrong password %d" % i for i in range(24)]
    pws.insert(12, PASSWORD)
    import time
    def go(pw):
        r = post(server, f"{AUTH}/reauthenticate", json={"password": pw}, headers=h)
        return (time.monotonic(), pw == PASSWORD, r.status_code)
    with ThreadPoolExecutor(max_workers=len(pws)) as pool:
        answers = sorted(pool.map(go, pws))
    t0 = answers[0][0]
    print([(round(t - t0, 3), ok, st) for t, ok, st in answers])
    print(post(server, f"{AUTH}/login", json={"email": "zz1@example.com", "password": PASSWORD}).status_code)

def test_login_lockout_race(app, server):
    post(server, f"{AUTH}/register", json={"email": "zz2@example.com", "password": PASSWORD})
    pws = ["wrong password %d" % i for i in range(8)]
    pws.insert(7, PASSWORD)
    with ThreadPoolExecutor(max_workers=len(pws)) as pool:
        answers = list(pool.map(lambda pw: (pw, post(server, f"{AUTH}/login", json={"email": "zz2@example.com", "password": pw})), pws))
    print([(pw == PASSWORD, a.status_code) for pw, a in answers])
