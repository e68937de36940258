//! A private FreeRADIUS 3.2 (Debian's `freeradius`) for interop tests and
//! the DCS benchmark: a configuration directory of its own (no file of
//! /etc/freeradius is read), one authentication listener on a port of the
//! test's, EAP-TLS 1.3 only with a DCS certificate from `nido mfr
//! dcs-cert`, Message-Authenticator required from its client, and the
//! device's certificate CN (nido puts the serial there) returned as
//! User-Name, as TS 33.501 I.2.2.2.2 wants the authenticated identity back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running FreeRADIUS; killed on drop.
pub(crate) struct FreeRadius {
    child: Child,
    pub(crate) log: PathBuf,
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the configuration needs.
pub(crate) struct Setup<'a> {
    /// Where the configuration goes (created).
    pub(crate) dir: &'a Path,
    /// The authentication port on 127.0.0.1.
    pub(crate) port: u16,
    /// The client (the network) and its secret.
    pub(crate) client: &'a str,
    pub(crate) secret: &'a str,
    /// The DCS certificate chain and key (`nido mfr dcs-cert`).
    pub(crate) cert: &'a Path,
    pub(crate) key: &'a Path,
    /// The manufacturer's root and issuing CA, concatenated into ca_file.
    pub(crate) cas: &'a [&'a Path],
}

/// Writes the configuration and starts `freeradius -f -d DIR -l stdout`;
/// returns once it says it is ready (panics with its log after 20 s).
pub(crate) fn start(program: &Path, s: &Setup<'_>) -> FreeRadius {
    let dir = s.dir;
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let mut ca = String::new();
    for p in s.cas {
        ca.push_str(&std::fs::read_to_string(p).unwrap());
    }
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    std::fs::copy(s.cert, dir.join("dcs.pem")).unwrap();
    std::fs::copy(s.key, dir.join("dcs.key")).unwrap();
    std::fs::write(
        dir.join("dictionary"),
        "$INCLUDE /usr/share/freeradius/dictionary\n",
    )
    .unwrap();
    let d = dir.display();
    let conf = format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}/log
raddbdir = {d}
radacctdir = {d}/log
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
	destination = stdout
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
	require_message_authenticator = yes
}}
thread pool {{
	start_servers = 4
	max_servers = 8
	min_spare_servers = 2
	max_spare_servers = 8
	max_requests_per_server = 0
	auto_limit_acct = no
}}
client {client} {{
	ipaddr = 127.0.0.1
	secret = {secret}
	require_message_authenticator = yes
}}
modules {{
	eap {{
		default_eap_type = tls
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 65536
		tls-config tls-common {{
			private_key_file = {d}/dcs.key
			certificate_file = {d}/dcs.pem
			ca_file = {d}/ca.pem
			tls_min_version = "1.3"
			tls_max_version = "1.3"
			cipher_list = "DEFAULT"
			ecdh_curve = ""
			cache {{
				enable = no
			}}
			verify {{
			}}
			ocsp {{
				enable = no
			}}
		}}
		tls {{
			tls = tls-common
		}}
	}}
}}
server default {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {port}
	}}
	authorize {{
		eap {{
			ok = return
		}}
	}}
	authenticate {{
		eap
	}}
	post-auth {{
		update reply {{
			User-Name := "%{{TLS-Client-Cert-Common-Name}}"
		}}
		Post-Auth-Type REJECT {{
			eap
		}}
	}}
}}
"#,
        client = s.client,
        secret = s.secret,
        port = s.port,
    );
    std::fs::write(dir.join("radiusd.conf"), conf).unwrap();
    let log = dir.join("freeradius.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(program)
        .args(["-f", "-d"])
        .arg(dir)
        .args(["-l", "stdout"])
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let server = FreeRadius { child, log };
    super::wait_for_log(
        &server.log,
        "Ready to process requests",
        std::time::Duration::from_secs(20),
    );
    server
}
