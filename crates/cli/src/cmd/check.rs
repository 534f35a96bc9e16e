//! `fleetpki check`: evaluates a certificate file against a role requirement profile (seed 002).
//! Exit 0 compliant, 1 not compliant, 2 unreadable input or unknown profile.

use super::read_input;
use crate::output;
use anyhow::Result;
use clap::Args;
use fleetpki_profiles::{Context, Severity, Status};
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckArgs {
    /// List the profiles and their rules.
    #[arg(long, conflicts_with_all = ["profile", "file"])]
    list_profiles: bool,
    /// The profile to check against (see --list-profiles).
    #[arg(long, required_unless_present = "list_profiles")]
    profile: Option<String>,
    /// The site system's intranet FQDN (or the cluster FQDN for sql-always-on).
    #[arg(long)]
    intranet_fqdn: Option<String>,
    /// The site system's internet FQDN.
    #[arg(long)]
    internet_fqdn: Option<String>,
    /// The client's computer name.
    #[arg(long)]
    computer_name: Option<String>,
    /// The cloud management gateway's service name.
    #[arg(long)]
    service_name: Option<String>,
    /// Password of a PKCS#12 file.
    #[arg(long)]
    password: Option<String>,
    /// Count rules that could not be verified (missing context) as failures.
    #[arg(long)]
    strict: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The certificate: PEM, DER or PKCS#12.
    #[arg(required_unless_present = "list_profiles")]
    file: Option<PathBuf>,
}

/// Runs the check and returns the exit code.
pub fn run(a: CheckArgs) -> Result<i32> {
    if a.list_profiles {
        list(a.json)?;
        return Ok(0);
    }
    let (Some(name), Some(file)) = (a.profile.as_deref(), a.file.as_ref()) else {
        anyhow::bail!("--profile and a certificate file are required");
    };
    let profile = match fleetpki_profiles::profile(name) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let bytes = read_input("certificate", file)?;
    let input = match fleetpki_profiles::read_input(&bytes, a.password.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Ok(2);
        }
    };
    let ctx = Context {
        intranet_fqdn: a.intranet_fqdn,
        internet_fqdn: a.internet_fqdn,
        computer_name: a.computer_name,
        service_name: a.service_name,
        format: Some(input.format),
        key_exportable: input.key_exportable,
        now: fleetpki_model::now(),
    };
    let report = fleetpki_profiles::check(profile, &input.facts, &ctx);
    let unverified = report.unverified().len();
    let compliant = report.compliant() && !(a.strict && unverified > 0);
    if a.json {
        output::json(
            &serde_json::json!({ "file": file.display().to_string(), "compliant": compliant, "report": report }),
        )?;
    } else {
        println!(
            "{}: profile {} ({})",
            file.display(),
            profile.name,
            profile.title
        );
        println!(
            "subject: {}   SAN: {}",
            input.facts.subject,
            if input.facts.sans.is_empty() {
                "(none)".into()
            } else {
                input.facts.sans.join(", ")
            }
        );
        for f in &report.findings {
            let tag = match (f.status, f.severity) {
                (Status::Pass, _) => "pass",
                (Status::Fail, Severity::Error) => "FAIL",
                (Status::Fail, Severity::Warning) => "warn",
                (Status::Unverified, _) => "unverified",
                (Status::NotApplicable, _) => "n/a",
            };
            println!("  {tag:<10} {:<40} found: {}", f.rule, f.found);
            if f.status != Status::Pass && f.status != Status::NotApplicable {
                println!("  {:<10} {:<40} requirement: {}", "", "", f.requirement);
                if !f.advice.is_empty() {
                    println!("  {:<10} {:<40} do: {}", "", "", f.advice);
                }
            }
        }
        let failed = report.failures().len();
        match (compliant, failed) {
            (true, _) if unverified > 0 => println!(
                "result: compliant as far as checked; {unverified} rule(s) need more context (see `unverified`)"
            ),
            (true, _) => println!("result: compliant"),
            (false, 0) => println!(
                "result: NOT COMPLIANT under --strict: {unverified} rule(s) could not be verified"
            ),
            (false, n) => println!("result: NOT COMPLIANT: {n} rule(s) failed"),
        }
    }
    Ok(if compliant { 0 } else { 1 })
}

fn list(json: bool) -> Result<()> {
    let all = fleetpki_profiles::profiles();
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "title": p.title, "applies_to": p.applies_to,
                    "rules": p.rules.iter().map(|r| serde_json::json!({"id": r.id, "severity": r.severity, "requirement": r.requirement})).collect::<Vec<_>>(),
                })
            })
            .collect();
        return output::json(&v);
    }
    for p in all {
        println!("{} — {}\n  applies to: {}", p.name, p.title, p.applies_to);
        for r in &p.rules {
            let sev = match r.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            println!("    {:<40} {sev:<8} {}", r.id, r.requirement);
        }
        println!();
    }
    Ok(())
}
