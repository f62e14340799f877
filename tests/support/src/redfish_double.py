"""A small Redfish service double for what sushy-emulator cannot do: 409/400 answers to a reset
into the current state, PoweringOff/PoweringOn transitions, slow answers, SessionService
sessions, and BMCs that answer 406 without Accept/OData-Version. HTTPS only.

Usage: redfish_double.py CONFIG.json EVENTS.jsonl CERT KEY. Prints the port it listens on
(127.0.0.1, a free one) on the first line of stdout. Every request is appended to EVENTS as one
JSON object: the ground truth tests judge by.
"""
import base64, json, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

cfg = json.load(open(sys.argv[1]))
events_path = sys.argv[2]
lock = threading.Lock()
systems = {s["id"]: {"name": s["name"], "power": s["power"], "target": None, "until": 0.0,
                     "report_on": cfg.get("report_on_for_reads", 0)}
           for s in cfg["systems"]}
for s in systems.values():
    # A system that starts in transition: PoweringOff ends Off, PoweringOn ends On.
    if s["power"].startswith("Powering"):
        s["target"] = s["power"][len("Powering"):]
        s["power"] = "On" if s["target"] == "Off" else "Off"
        s["until"] = time.time() + cfg.get("transition_secs", 0)
sessions = {}  # token -> {"id": n, "deleted": bool}


def record(ev):
    ev["t"] = time.time()
    with lock, open(events_path, "a") as f:
        f.write(json.dumps(ev) + "\n")


def power_of(s):
    if s["target"] and time.time() >= s["until"]:
        s["power"], s["target"] = s["target"], None
    if s["target"]:
        return "PoweringOn" if s["target"] == "On" else "PoweringOff"
    return s["power"]


def error(msg):
    return {"error": {"code": "Base.1.0.GeneralError", "message": msg,
                      "@Message.ExtendedInfo": [{"Message": msg}]}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body=None, headers=None, ev=None):
        data = b"" if body is None else json.dumps(body).encode()
        # Record first: a client that exits on the answer must find its request in the events.
        ev = dict(ev or {})
        ev.update(method=self.command, path=self.path, status=status, auth=self.auth_kind,
                  accept=self.headers.get("Accept"), odata=self.headers.get("OData-Version"))
        record(ev)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authenticate(self):
        token = self.headers.get("X-Auth-Token")
        if token is not None:
            s = sessions.get(token)
            self.auth_kind = "token" if s and not s["deleted"] else "bad-token"
            return self.auth_kind == "token"
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, pw = base64.b64decode(basic[6:]).decode().partition(":")
            self.auth_kind = "basic"
            if user == cfg["username"] and pw == cfg["password"]:
                return True
            self.auth_kind = "bad-basic"
        return False

    def handle_one(self):
        self.auth_kind = "none"
        time.sleep(cfg.get("delay_secs", 0))
        if cfg.get("require_odata_headers") and (
                "json" not in (self.headers.get("Accept") or "")
                or self.headers.get("OData-Version") != "4.0"):
            return self.answer(406, error("Accept: application/json and OData-Version: 4.0 required"))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        path = self.path.rstrip("/")
        if path in ("/redfish/v1", "/redfish") and self.command == "GET":
            root = {"@odata.id": "/redfish/v1/", "Id": "RootService",
                    "Systems": {"@odata.id": "/redfish/v1/Systems"}}
            if cfg.get("sessions"):
                root["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
                root["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
            return self.answer(200, root)
        if path == "/redfish/v1/SessionService/Sessions" and self.command == "POST" and cfg.get("sessions"):
            if cfg.get("session_post_status"):
                return self.answer(cfg["session_post_status"], error("sessions unavailable"), ev={"session": "unavailable"})
            body = body or {}
            if body.get("UserName") != cfg["username"] or body.get("Password") != cfg["password"]:
                return self.answer(401, error("Invalid username or password"), ev={"session": "refused"})
            with lock:
                n = len(sessions) + 1
                token = "tok-%d-%s" % (n, base64.b16encode(str(time.time()).encode()).decode())
                sessions[token] = {"id": n, "deleted": False}
            loc = "/redfish/v1/SessionService/Sessions/%d" % n
            return self.answer(201, {"@odata.id": loc, "Id": str(n)},
                               {"X-Auth-Token": token, "Location": loc}, ev={"session": "created", "id": n})
        if not self.authenticate():
            return self.answer(401, error("Authentication required"))
        if path.startswith("/redfish/v1/SessionService/Sessions/") and self.command == "DELETE":
            n = int(path.rsplit("/", 1)[1])
            for s in sessions.values():
                if s["id"] == n and not s["deleted"]:
                    s["deleted"] = True
                    return self.answer(204, None, ev={"session": "deleted", "id": n})
            return self.answer(404, error("no such session"))
        if path == "/redfish/v1/Systems" and self.command == "GET":
            return self.answer(200, {"Members": [{"@odata.id": "/redfish/v1/Systems/" + i} for i in systems],
                                     "Members@odata.count": len(systems)})
        parts = path.split("/")
        if len(parts) >= 5 and parts[3] == "Systems" and parts[4] in systems:
            sid = parts[4]
            s = systems[sid]
            if len(parts) == 5 and self.command == "GET":
                with lock:
                    state = power_of(s)
                    # A BMC whose status lags: the first reads say On whatever the state.
                    if s["report_on"] > 0:
                        s["report_on"] -= 1
                        state = "On"
                reset = {"target": "/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset" % sid}
                if cfg.get("allowed") is not None:
                    reset["ResetType@Redfish.AllowableValues"] = cfg["allowed"]
                return self.answer(200, {"@odata.id": "/redfish/v1/Systems/" + sid, "Id": sid,
                                         "Name": s["name"], "PowerState": state,
                                         "Actions": {"#ComputerSystem.Reset": reset}},
                                   ev={"power": state})
            if parts[5:] == ["Actions", "ComputerSystem.Reset"] and self.command == "POST":
                rt = (body or {}).get("ResetType")
                ev = {"reset": rt, "system": sid}
                if rt in cfg.get("refuse", {}):
                    return self.answer(cfg["refuse"][rt], error("ResetType %s refused" % rt), ev=ev)
                if cfg.get("allowed") is not None and rt not in cfg["allowed"]:
                    return self.answer(400, error("The value %s for ResetType is not supported" % rt), ev=ev)
                want = {"On": "On", "ForceOn": "On", "ForceOff": "Off", "GracefulShutdown": "Off"}.get(rt)
                if rt == "Nmi":
                    return self.answer(204, None, ev=ev)
                if want is None:
                    return self.answer(400, error("unknown ResetType %s" % rt), ev=ev)
                with lock:
                    state = power_of(s)
                    busy = s["target"] is not None
                    if (state == want or busy) and cfg.get("already_status"):
                        word = "on" if want == "On" else "off"
                        msg = ("The server is already powered %s." % word if not busy
                               else "A power operation is already in progress.")
                        st = cfg["already_status"]
                    else:
                        st, msg = 204, None
                        if state != want and not busy:
                            s["target"], s["until"] = want, time.time() + cfg.get("transition_secs", 0)
                            if cfg.get("transition_secs", 0) == 0:
                                power_of(s)
                if msg:
                    return self.answer(st, error(msg), ev=ev)
                return self.answer(204, None, ev=ev)
        return self.answer(404, error("no such resource: " + self.path))

    do_GET = do_POST = do_DELETE = do_PATCH = handle_one


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
