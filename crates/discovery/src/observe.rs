//! Asks the DNS (through the server's one resolver, crates/dns) for each record of a plan,
//! all at once, and hands the answers to `check.rs` to judge. MX and TXT go through the
//! resolver's typed lookups; SRV, CAA and CNAME, which it does not type, through the hickory
//! resolver it wraps (`Resolver::hickory`), with its errors mapped the same way
//! (`DnsError::from`), so a timeout here is the same "temporary" as everywhere else.

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use portcullis_dns::{DnsError, Mx, Resolver};

use crate::check::{judge, Context, Finding, Observed};
use crate::records::{Data, Expected, Plan, Purpose};

/// Looks up every record of `plan` and judges it; findings in the plan's order.
pub async fn check(resolver: &Resolver, plan: &Plan, hostname: &str) -> Vec<Finding> {
    let host_addresses = resolver.ip_addrs(hostname).await.unwrap_or_default();
    let context = Context { hostname: hostname.to_string(), host_addresses };
    let mut tasks = tokio::task::JoinSet::new();
    for (index, expected) in plan.records.iter().enumerate() {
        let resolver = resolver.clone();
        let expected = expected.clone();
        tasks.spawn(async move { (index, observe(&resolver, &expected).await) });
    }
    let mut observed: Vec<Option<Observed>> = vec![None; plan.records.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, answer)) = joined {
            observed[index] = Some(answer);
        }
    }
    plan.records
        .iter()
        .zip(observed)
        .map(|(expected, answer)| {
            let answer = answer.unwrap_or_else(|| Observed::Failed("the lookup task failed".into()));
            judge(expected, &answer, &context)
        })
        .collect()
}

/// What the DNS says about one expected record.
pub async fn observe(resolver: &Resolver, expected: &Expected) -> Observed {
    let name = expected.name.as_str();
    match (&expected.data, &expected.purpose) {
        (Data::Mx { .. }, _) => match resolver.mx(name).await {
            Ok(Mx::Null) => Observed::Records(vec![Data::Mx { preference: 0, exchange: ".".into() }]),
            Ok(Mx::Hosts(hosts)) => Observed::Records(
                hosts.into_iter().map(|h| Data::Mx { preference: h.preference, exchange: h.exchange }).collect(),
            ),
            Err(e) => failure(e),
        },
        (Data::Txt(_), _) => match resolver.txt(name).await {
            Ok(txts) => Observed::Records(
                txts.into_iter().map(|t| Data::Txt(String::from_utf8_lossy(&t).into_owned())).collect(),
            ),
            Err(e) => failure(e),
        },
        (Data::Srv { .. }, _) => records(resolver, name, RecordType::SRV).await,
        (Data::Caa { .. }, _) => records(resolver, name, RecordType::CAA).await,
        (Data::Cname(_), Purpose::Alias) => match records(resolver, name, RecordType::CNAME).await {
            Observed::Absent => match resolver.ip_addrs(name).await {
                Ok(addresses) => Observed::Addresses(addresses),
                Err(e) => failure(e),
            },
            other => other,
        },
        (Data::Cname(_), _) => records(resolver, name, RecordType::CNAME).await,
    }
}

fn failure(error: DnsError) -> Observed {
    if error.is_not_found() {
        Observed::Absent
    } else {
        Observed::Failed(error.to_string())
    }
}

async fn records(resolver: &Resolver, name: &str, rtype: RecordType) -> Observed {
    let Ok(mut fqdn) = Name::from_utf8(name) else {
        return Observed::Failed(format!("{name:?} is not a domain name"));
    };
    fqdn.set_fqdn(true);
    match resolver.hickory().lookup(fqdn, rtype).await {
        Ok(lookup) => {
            let found: Vec<Data> = lookup.answers().iter().filter_map(|r| data(&r.data)).collect();
            if found.is_empty() {
                Observed::Absent
            } else {
                Observed::Records(found)
            }
        }
        Err(e) => failure(DnsError::from(e)),
    }
}

fn plain(name: &Name) -> String {
    if name.is_root() {
        return ".".into();
    }
    name.to_lowercase().to_ascii().trim_end_matches('.').to_string()
}

fn data(rdata: &RData) -> Option<Data> {
    Some(match rdata {
        RData::SRV(srv) => {
            Data::Srv { priority: srv.priority, weight: srv.weight, port: srv.port, target: plain(&srv.target) }
        }
        RData::CAA(caa) => Data::Caa { tag: caa.tag.clone(), value: String::from_utf8_lossy(&caa.value).into_owned() },
        RData::CNAME(cname) => Data::Cname(plain(&cname.0)),
        _ => return None,
    })
}
