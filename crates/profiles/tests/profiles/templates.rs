//! check_template: the template settings that would let non-compliant certificates through.

use fleetpki_model::template::Template;
use fleetpki_profiles::{Severity, Status, check_template, profile, profiles};

fn base(name: &str) -> Template {
    Template::bases()
        .into_iter()
        .find(|t| t.name == name)
        .expect("base")
        .duplicate("T")
        .expect("duplicate")
}

fn edit(mut t: Template, edits: &[(&str, &str)]) -> Template {
    for (f, v) in edits {
        t.set_field(f, v).expect("set");
    }
    t.validate().expect("valid");
    t
}

/// The rule ids of the findings.
fn rules(p: &str, t: &Template) -> Vec<&'static str> {
    let findings = check_template(profile(p).expect("profile"), t);
    for f in &findings {
        assert_eq!(f.status, Status::Fail);
        assert_eq!(f.severity, Severity::Error);
        assert!(!f.found.is_empty() && !f.advice.is_empty(), "{f:?}");
    }
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn rsa_max_4096_on_a_2048_profile() {
    let t = base("WebServer");
    let f = check_template(profile("sql-server").expect("p"), &t);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, "key-max-2048");
    assert!(f[0].found.contains("rsa:2048-4096"), "{}", f[0].found);
    assert!(
        f[0].advice.contains("--max-key-size 2048"),
        "{}",
        f[0].advice
    );
    let fixed = edit(t, &[("max-key-size", "2048")]);
    assert!(rules("sql-server", &fixed).is_empty());
    // A minimum above the cap cannot be fixed by the maximum alone.
    let t = edit(base("WebServer"), &[("key-algorithms", "rsa:3072-4096")]);
    let f = check_template(profile("sql-server").expect("p"), &t);
    assert!(
        f[0].advice.contains("--key-algorithms rsa:2048-2048"),
        "{}",
        f[0].advice
    );
}

#[test]
fn ecdsa_on_a_2048_or_4096_profile() {
    let t = edit(base("WebServer"), &[("exportable", "true")]);
    let f = check_template(profile("cloud-management-gateway").expect("p"), &t);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, "key-rsa-2048-or-4096");
    assert!(
        f[0].found.contains("ecdsa:256-384 (not RSA)"),
        "{}",
        f[0].found
    );
    assert!(
        f[0].advice.contains("--key-algorithms rsa:2048-4096"),
        "{}",
        f[0].advice
    );
    let fixed = edit(t, &[("key-algorithms", "rsa:2048-4096")]);
    assert!(rules("cloud-management-gateway", &fixed).is_empty());
}

#[test]
fn ndes_key_sizes() {
    // Template validation refuses RSA below 1024 bits; check_template does not rely on it.
    let mut t = edit(base("Workstation"), &[("key-algorithms", "rsa:1024-2048")]);
    t.key_algorithms[0].min_bits = 512;
    let f = check_template(profile("ndes-policy-module").expect("p"), &t);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].found.contains("rsa:512-2048 (outside RSA 1024-2048)"),
        "{}",
        f[0].found
    );
    assert!(
        f[0].advice.contains("--key-algorithms rsa:1024-2048"),
        "{}",
        f[0].advice
    );
    let t = edit(base("Workstation"), &[("key-algorithms", "rsa:2048-4096")]);
    assert_eq!(rules("ndes-policy-module", &t), ["key-rsa-1024-or-2048"]);
    let t = edit(base("Workstation"), &[("key-algorithms", "rsa:1024-2048")]);
    assert!(rules("ndes-policy-module", &t).is_empty());
}

#[test]
fn export_validity_and_key_usage() {
    // Export disabled where the profile needs it.
    let t = edit(base("Workstation"), &[("max-key-size", "2048")]);
    for p in ["distribution-point", "task-sequence-media"] {
        let f = check_template(profile(p).expect("p"), &t);
        assert_eq!(f.len(), 1, "{p}: {f:#?}");
        assert_eq!(f[0].rule, "exportable-key");
        assert!(f[0].advice.contains("--exportable true"));
    }
    // Validity under two years on sql-always-on.
    let t = edit(
        base("WebServer"),
        &[
            ("max-key-size", "2048"),
            ("exportable", "true"),
            ("validity", "1y"),
        ],
    );
    let f = check_template(profile("sql-always-on").expect("p"), &t);
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["validity-2-years"]
    );
    assert!(f[0].advice.contains("--validity 2y"), "{}", f[0].advice);
    assert!(rules("sql-always-on", &edit(t, &[("validity", "2y")])).is_empty());
    // windows-client: keyEncipherment matters while RSA keys are allowed.
    let t = edit(base("ClientAuth"), &[]);
    let f = check_template(profile("windows-client").expect("p"), &t);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, "ku-digital-signature-key-encipherment");
    assert!(
        f[0].advice
            .contains("--key-usage digitalSignature,keyEncipherment")
    );
    let ec_only = edit(base("ClientAuth"), &[("key-algorithms", "ecdsa:256-384")]);
    assert!(rules("windows-client", &ec_only).is_empty());
    let no_ds = edit(base("Workstation"), &[("key-usage", "keyEncipherment")]);
    assert_eq!(
        rules("windows-client", &no_ds),
        ["ku-digital-signature-key-encipherment"]
    );
    assert!(rules("windows-client", &base("Workstation")).is_empty());
}

#[test]
fn eku_subject_and_san_rules() {
    let t = base("Workstation");
    let f = check_template(profile("site-system-https").expect("p"), &t);
    assert_eq!(
        f.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["eku-server-auth"]
    );
    assert!(
        f[0].advice.contains("--eku client-auth,server-auth"),
        "{}",
        f[0].advice
    );
    assert_eq!(
        rules("proxy-web-server", &base("WebServer")),
        ["eku-client-auth"]
    );
    let proxy = edit(base("WebServer"), &[("eku", "server-auth,client-auth")]);
    assert!(rules("proxy-web-server", &proxy).is_empty());
    // macOS: anything in the SAN is refused.
    let mac = edit(base("ClientAuth"), &[("max-key-size", "2048")]);
    assert!(rules("macos-client", &mac).is_empty());
    let mac_dns = edit(mac.clone(), &[("subject-from-directory", "cn,dns")]);
    assert_eq!(rules("macos-client", &mac_dns), ["no-san"]);
    let mac_upn = edit(mac.clone(), &[("subject-from-directory", "upn")]);
    assert_eq!(
        rules("macos-client", &mac_upn),
        ["unique-subject", "no-san"]
    );
    let mac_supply = edit(mac, &[("subject", "supply")]);
    assert_eq!(rules("macos-client", &mac_supply), ["no-san"]);
    // A subject without a CN cannot hold the SQL Server's FQDN; no DNS name at all fails HTTPS.
    let sql = edit(
        base("WebServer"),
        &[("max-key-size", "2048"), ("subject-from-directory", "dns")],
    );
    assert_eq!(rules("sql-server", &sql), ["subject-intranet-fqdn"]);
    let https = edit(base("WebServer"), &[("subject-from-directory", "upn")]);
    assert_eq!(rules("site-system-https", &https), ["intranet-fqdn"]);
}

#[test]
fn root_ca_is_not_for_templates() {
    let f = check_template(profile("root-ca").expect("p"), &base("WebServer"));
    assert_eq!(f.len(), 1);
    assert!(
        f[0].advice
            .contains("applies to CA certificates, not templates"),
        "{}",
        f[0].advice
    );
}

#[test]
fn a_compliant_template_for_every_end_entity_profile() {
    /// (profile, base template, edits)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("site-system-https", "WebServer", &[]),
        (
            "cloud-management-gateway",
            "WebServer",
            &[("key-algorithms", "rsa:2048-4096"), ("exportable", "true")],
        ),
        ("sql-server", "WebServer", &[("max-key-size", "2048")]),
        (
            "sql-always-on",
            "WebServer",
            &[("max-key-size", "2048"), ("exportable", "true")],
        ),
        (
            "site-system-monitoring",
            "Workstation",
            &[("max-key-size", "2048")],
        ),
        (
            "ndes-policy-module",
            "Workstation",
            &[("key-algorithms", "rsa:2048-2048")],
        ),
        (
            "distribution-point",
            "Workstation",
            &[("max-key-size", "2048"), ("exportable", "true")],
        ),
        (
            "proxy-web-server",
            "WebServer",
            &[("eku", "server-auth,client-auth")],
        ),
        ("windows-client", "Workstation", &[]),
        (
            "task-sequence-media",
            "Workstation",
            &[("max-key-size", "2048"), ("exportable", "true")],
        ),
        ("macos-client", "ClientAuth", &[("max-key-size", "2048")]),
        ("mobile-device", "ClientAuth", &[("max-key-size", "2048")]),
    ];
    for (p, b, edits) in cases {
        let t = edit(base(b), edits);
        let f = check_template(profile(p).expect("p"), &t);
        assert!(f.is_empty(), "{p}: {f:#?}");
    }
    assert_eq!(cases.len() + 1, profiles().len());
}
