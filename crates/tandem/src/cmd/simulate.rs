//! `tandem simulate`: run a scenario (the user's manifests + a workload) through both layers on
//! a virtual clock and report pods, nodes, pending time and cost.
//!
//! This is the shell around `tandem-sim`: it reads the scenario and the manifests it names,
//! refuses invalid manifests exactly as `tandem validate` would, converts them with
//! `tandem_manifest::convert`, resolves the scenario's references (ScaledObjects, triggers,
//! workloads, NodePools) into a [`SimInput`], runs it with a progress bar, and prints or writes
//! the report. Every problem is one line, `file:line: Kind ns/name: field: message`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_manifest::convert::{self, CatalogKind, Converted};
use tandem_manifest::source::{SourceFile, from_text, read_inputs};
use tandem_manifest::yaml::LineIndex;
use tandem_manifest::{Severity, validate};
use tandem_model::catalog::{CapacityType, Catalog};
use tandem_nodescaler::headroom::Headroom;
use tandem_nodescaler::snapshot::{self as snap, BudgetReason, ConsolidationPolicy};
use tandem_sim::cloud::{CloudConfig, OfferingMatch, Range};
use tandem_sim::input::{
    Budget, ManualScale, PoolInput, ScalerInput, SimInput, SourceInput, SourceKind, WorkloadInput,
    default_sample_every,
};
use tandem_sim::pattern::{Millis, Pattern};
use tandem_sim::report::compare::Comparison;
use tandem_sim::report::{html, table};
use tandem_sim::scenario::{self, Provider, RangeSpec, Scenario, TriggerRef};
use tandem_sim::{Report, Simulation};

/// Simulate a scenario: the manifests it names (ScaledObjects, Deployments, NodePools,
/// NodeClasses …) against a workload (queue arrivals, a metric, cron windows, manual scales),
/// with the provider's real catalog and prices and seeded cloud delays. Prints a summary table,
/// or the JSON report with --json; --out writes a self-contained HTML report with charts.
///
/// Exit code 0 after a run, 1 when the scenario or its manifests are invalid, 2 when a file
/// cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file (YAML); see examples/simulate/.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Print the JSON report on standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Master seed; overrides the scenario's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Turn pod-layer coordination off (consolidation ignores pods a ScaledObject may bring
    /// back), to see what KEDA + Karpenter would do.
    #[arg(long)]
    pub no_coordination: bool,
    /// Turn predictive provisioning off (the node layer waits for pending pods, as
    /// Karpenter does), to see what it alone contributes.
    #[arg(long)]
    pub no_predictive_provisioning: bool,
    /// Turn push triggers off (a queue at zero consumers waits for the next poll, as KEDA
    /// does).
    #[arg(long)]
    pub no_push: bool,
    /// Run the scenario twice — under upstream semantics (KEDA polling, the HPA, Karpenter's
    /// pending-pod reaction and consolidation) and with Tandem's cross-layer features
    /// (coordination, predictive provisioning, push, headroom) — and report both side by side
    /// with the differences in cost and pending time.
    #[arg(long)]
    pub compare: bool,
}

/// Why a scenario cannot be simulated: located lines, or an unreadable file.
#[derive(Debug)]
pub enum LoadError {
    /// A file could not be read (exit 2).
    Unreadable(String),
    /// Findings, one line each (exit 1).
    Invalid(Vec<String>),
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = match load(&args.scenario, args.seed) {
        Ok(i) => i,
        Err(LoadError::Unreadable(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(LoadError::Invalid(lines)) => {
            for l in &lines {
                eprintln!("{l}");
            }
            eprintln!(
                "{}: not simulated: {} problem(s)",
                args.scenario.display(),
                lines.len()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let mut input = input;
    if args.no_coordination {
        input.coordination_ceiling_ms = None;
    }
    input.predictive &= !args.no_predictive_provisioning;
    input.push &= !args.no_push;
    if args.compare {
        let upstream = simulate_with_progress(input.upstream());
        let tandem = simulate_with_progress(input);
        let cmp = Comparison::new(upstream, tandem);
        if args.json {
            print!("{}", cmp.to_json());
        } else {
            print!("{}", cmp.table());
        }
        if let Some(out) = &args.out {
            std::fs::write(out, cmp.html())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = simulate_with_progress(input);
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", table::render(&report));
    }
    if let Some(out) = &args.out {
        std::fs::write(out, html::render(&report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the simulation; a progress bar appears on stderr once a run has taken a second, and only
/// when stderr is a terminal (indicatif hides it otherwise).
fn simulate_with_progress(input: SimInput) -> Report {
    let total = u64::try_from(input.duration_ms.max(1)).unwrap_or(u64::MAX);
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total / 1000),
        indicatif::ProgressDrawTarget::hidden(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "simulating {bar:40} {pos}/{len} s simulated ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut shown = false;
    let mut sim = Simulation::new(input);
    let mut last = 0;
    let report = sim.run_with(|now| {
        let secs = u64::try_from(now.0 / 1000).unwrap_or(0);
        if secs == last {
            return;
        }
        last = secs;
        if !shown && started.elapsed() > Duration::from_secs(1) {
            shown = true;
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_position(secs);
    });
    bar.finish_and_clear();
    report
}

/// A scenario file's text with its line index, for locating errors.
struct ScenarioFile {
    name: String,
    display: String,
    lines: LineIndex,
}

impl ScenarioFile {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> String {
        let line = self.lines.line_of(field).unwrap_or(1);
        format!(
            "{}:{line}: Scenario {}: {field}: {message}",
            self.name, self.display
        )
    }
}

fn split_ref(text: &str) -> (String, String) {
    match text.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => ("default".to_owned(), text.to_owned()),
    }
}

fn range(r: Option<RangeSpec>, default: Range) -> Range {
    r.map_or(default, |r| Range {
        min_ms: r.min.0,
        max_ms: r.max.0.max(r.min.0),
    })
}

/// Reads a scenario and everything it names into a simulation input.
///
/// # Errors
/// [`LoadError`] with every problem found, located.
pub fn load(path: &Path, seed: Option<u64>) -> Result<SimInput, LoadError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Unreadable(format!("cannot read {name}: {e}")))?;
    let parsed = from_text(&name, &text);
    let lines = parsed
        .documents
        .first()
        .map(|d| d.lines.clone())
        .unwrap_or_default();
    let file_stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sf = ScenarioFile {
        name: name.clone(),
        display: file_stem.clone(),
        lines,
    };
    let sc: Scenario = scenario::parse(&text).map_err(|e| {
        let line = e.line.or_else(|| sf.lines.line_of(&e.path)).unwrap_or(1);
        let field = if e.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.path)
        };
        LoadError::Invalid(vec![format!(
            "{name}:{line}: Scenario {file_stem}: {field}{}",
            e.message
        )])
    })?;
    if let Some(n) = &sc.name {
        sf.display = n.clone();
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut errors = Vec::new();

    // Manifests: read, validate like `tandem validate`, convert.
    let mut files: Vec<SourceFile> = Vec::new();
    for (i, m) in sc.manifests.iter().enumerate() {
        match (&m.path, &m.inline) {
            (Some(p), None) => {
                let full = dir.join(p);
                match read_inputs(&[full.display().to_string()]) {
                    Ok(f) => files.extend(f),
                    Err(e) => return Err(LoadError::Unreadable(e.to_string())),
                }
            }
            (None, Some(text)) => files.push(from_text(&format!("{name}#manifests[{i}]"), text)),
            _ => errors.push(sf.error(
                &format!("manifests[{i}]"),
                "write exactly one of path or inline",
            )),
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(sf.error("manifests", "names no manifest"));
    }
    let report = validate(&files);
    for f in &report.findings {
        if f.severity == Severity::Error {
            errors.push(f.to_string());
        }
    }
    if !errors.is_empty() {
        return Err(LoadError::Invalid(errors));
    }
    let converted = convert::convert(&files)
        .map_err(|es| LoadError::Invalid(es.iter().map(ToString::to_string).collect()))?;
    build(&sc, &sf, dir, &converted, seed).map_err(LoadError::Invalid)
}

fn catalog(sc: &Scenario, sf: &ScenarioFile) -> Result<(CatalogKind, Arc<Catalog>), String> {
    let region = sc.catalog.region.as_deref();
    let bad =
        |e: &dyn std::fmt::Display| sf.error("catalog", format!("cannot load the catalog: {e}"));
    match sc.catalog.provider {
        Provider::Aws => {
            if region.is_some_and(|r| r != "us-east-1") {
                return Err(sf.error(
                    "catalog.region",
                    "only us-east-1 offerings and prices are embedded; use us-east-1",
                ));
            }
            Catalog::aws_us_east_1()
                .map(|c| (CatalogKind::Aws, Arc::new(c)))
                .map_err(|e| bad(&e))
        }
        Provider::Azure => {
            if region.is_some_and(|r| r != "eastus") {
                return Err(sf.error(
                    "catalog.region",
                    "only eastus prices are embedded; use eastus",
                ));
            }
            Catalog::azure_eastus()
                .map(|c| (CatalogKind::Azure, Arc::new(c)))
                .map_err(|e| bad(&e))
        }
        Provider::Kwok => Ok((CatalogKind::Kwok, Arc::new(Catalog::kwok()))),
    }
}

fn build(
    sc: &Scenario,
    sf: &ScenarioFile,
    dir: &Path,
    c: &Converted,
    seed: Option<u64>,
) -> Result<SimInput, Vec<String>> {
    let mut errors = Vec::new();
    let duration = sc.duration.0;
    if duration <= 0 {
        return Err(vec![sf.error("duration", "must be longer than 0s")]);
    }
    let mut input = SimInput::new(
        sc.name.as_deref().unwrap_or(&sf.display),
        seed.or(sc.seed).unwrap_or(0),
        duration,
    );
    input.sample_every_ms = sc
        .sample_every
        .map_or_else(|| default_sample_every(duration), |m| m.0.max(1_000));
    let (kind, cat) = catalog(sc, sf).map_err(|e| vec![e])?;

    // NodePools and their catalogs.
    for np in &c.nodepools {
        if np.catalog != Some(kind) {
            errors.push(sf.error(
                "catalog.provider",
                format!(
                    "NodePool {} uses a {} NodeClass ({}), but the scenario's catalog is {}",
                    np.pool.name,
                    np.node_class_group,
                    np.node_class_kind,
                    kind.as_str()
                ),
            ));
            continue;
        }
        input
            .catalogs
            .insert(np.pool.node_class.clone(), Arc::clone(&cat));
        let mut consolidate_after_ms = np
            .disruption
            .consolidate_after
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if let Some(o) = sc.overrides.nodepools.get(&np.pool.name)
            && let Some(text) = &o.consolidate_after
        {
            consolidate_after_ms = if text == "Never" {
                None
            } else {
                match Millis::parse(text) {
                    Ok(m) => Some(m.0),
                    Err(e) => {
                        errors.push(sf.error(
                            &format!("overrides.nodepools.{}.consolidateAfter", np.pool.name),
                            e,
                        ));
                        None
                    }
                }
            };
        }
        let budgets = np
            .disruption
            .budgets
            .iter()
            .filter(|b| {
                b.schedule.is_none()
                    && (b.reasons.is_empty() || b.reasons.iter().any(|r| r == "Empty"))
            })
            .map(|b| match b.nodes {
                convert::BudgetNodes::Count(n) => Budget::Count(n),
                convert::BudgetNodes::Percent(p) => Budget::Percent(p),
            })
            .collect();
        let pool_input = PoolInput {
            pool: np.pool.clone(),
            consolidate_after_ms,
            budgets,
        };
        input
            .pool_disruption
            .insert(np.pool.name.clone(), pool_disruption(np, &pool_input));
        let over = sc.overrides.nodepools.get(&np.pool.name);
        let headroom = match over.and_then(|o| o.headroom.as_deref()) {
            None => np.headroom.clone(),
            Some("") => None,
            Some(v) => match Headroom::parse(v, None, None) {
                Ok(h) => Some(h),
                Err(e) => {
                    errors.push(
                        sf.error(&format!("overrides.nodepools.{}.headroom", np.pool.name), e),
                    );
                    None
                }
            },
        };
        if let Some(h) = headroom {
            input.headroom.push((input.pools.len(), h));
        }
        input.pools.push(pool_input);
        if !np.coordinated {
            input.uncoordinated_pools.insert(np.pool.name.clone());
        }
    }
    for name in sc.overrides.nodepools.keys() {
        if !c.nodepools.iter().any(|n| &n.pool.name == name) {
            errors.push(sf.error(
                &format!("overrides.nodepools.{name}"),
                "no NodePool of that name in the manifests",
            ));
        }
    }
    if input.pools.is_empty() && errors.is_empty() {
        errors.push(sf.error("manifests", "no NodePool: nothing could launch nodes"));
    }

    // Workloads.
    for w in &c.workloads {
        input.workloads.push(WorkloadInput {
            key: format!("{}/{}", w.namespace, w.name),
            replicas: w.replicas,
            template: w.template.clone(),
            image: w.image.clone(),
        });
    }
    let find_workload = |ns: &str, name: &str| {
        c.workloads
            .iter()
            .position(|w| w.namespace == ns && w.name == name)
    };

    // ScaledObjects and their sources.
    let mut scaler_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for so in &c.scaled_objects {
        let Some(target) = find_workload(&so.namespace, &so.target_name) else {
            errors.push(sf.error(
                "manifests",
                format!(
                    "ScaledObject {}/{} scales {} {}/{}, which is not among the manifests",
                    so.namespace, so.name, so.target_kind, so.namespace, so.target_name
                ),
            ));
            continue;
        };
        scaler_of.insert((so.namespace.clone(), so.name.clone()), input.scalers.len());
        let mut sources = vec![None; so.triggers.len()];
        for (i, t) in so.triggers.iter().enumerate() {
            if t.kind == "cron" {
                match convert::scaled_object::cron_windows(
                    i,
                    t,
                    convert::scaled_object::SIMULATION_EPOCH_MS,
                    duration,
                ) {
                    Ok((windows, desired)) => {
                        sources[i] = Some(input.sources.len());
                        input.sources.push(SourceInput {
                            name: format!("{}/{} {}", so.namespace, so.name, t.metric_name),
                            kind: SourceKind::Cron { windows, desired },
                        });
                    }
                    Err(e) => errors.push(format!(
                        "ScaledObject {}/{}: {}: {}",
                        so.namespace, so.name, e.field, e.message
                    )),
                }
            }
        }
        input.scalers.push(ScalerInput {
            key: format!("{}/{}", so.namespace, so.name),
            target,
            polling_interval_ms: i64::from(so.polling_interval_secs) * 1000,
            config: so.config.clone(),
            sources,
        });
    }
    for (i, s) in sc.workload.sources.iter().enumerate() {
        let field = format!("workload.sources[{i}]");
        let key = split_ref(&s.scaled_object);
        let Some(&si) = scaler_of.get(&key) else {
            errors.push(sf.error(
                &format!("{field}.scaledObject"),
                format!("no ScaledObject {}/{} among the manifests", key.0, key.1),
            ));
            continue;
        };
        let so = c
            .scaled_objects
            .iter()
            .find(|so| so.namespace == key.0 && so.name == key.1);
        let Some(so) = so else { continue };
        let index = match &s.trigger {
            None => Some(0),
            Some(TriggerRef::Index(i)) => (*i < so.triggers.len()).then_some(*i),
            Some(TriggerRef::Name(n)) => so
                .triggers
                .iter()
                .position(|t| t.name.as_deref() == Some(n)),
        };
        let Some(ti) = index.filter(|i| *i < so.triggers.len()) else {
            errors.push(sf.error(
                &format!("{field}.trigger"),
                format!("ScaledObject {}/{} has no such trigger", key.0, key.1),
            ));
            continue;
        };
        let target = input.scalers[si].target;
        let kind = match (&s.queue, &s.metric) {
            (Some(q), None) => SourceKind::Queue {
                arrivals: resolve_pattern(
                    &q.arrivals,
                    dir,
                    sf,
                    &format!("{field}.queue.arrivals"),
                    &mut errors,
                ),
                per_pod_rate: q.per_pod_rate,
                consumer: target,
                initial: q.initial,
            },
            (None, Some(m)) => SourceKind::Metric {
                value: resolve_pattern(m, dir, sf, &format!("{field}.metric"), &mut errors),
            },
            _ => {
                errors.push(sf.error(&field, "write exactly one of queue or metric"));
                continue;
            }
        };
        if let SourceKind::Queue { per_pod_rate, .. } = kind
            && !(per_pod_rate.is_finite() && per_pod_rate >= 0.0)
        {
            errors.push(sf.error(&format!("{field}.queue.perPodRate"), "must be 0 or more"));
        }
        input.scalers[si].sources[ti] = Some(input.sources.len());
        input.sources.push(SourceInput {
            name: s
                .name
                .clone()
                .unwrap_or_else(|| so.triggers[ti].metric_name.clone()),
            kind,
        });
    }
    for (i, m) in sc.workload.scale.iter().enumerate() {
        let (ns, name) = split_ref(&m.target);
        match find_workload(&ns, &name) {
            Some(w) => input.manual.push(ManualScale {
                at_ms: m.at.0,
                workload: w,
                replicas: m.replicas,
            }),
            None => errors.push(sf.error(
                &format!("workload.scale[{i}].target"),
                format!("no workload {ns}/{name} among the manifests"),
            )),
        }
    }

    // Cloud.
    let d = CloudConfig::default();
    let cs = &sc.cloud;
    let mut unavailable = Vec::new();
    let mut ice_probability = 0.0;
    if let Some(ice) = &cs.insufficient_capacity {
        ice_probability = ice.probability;
        if !(0.0..=1.0).contains(&ice.probability) {
            errors.push(sf.error(
                "cloud.insufficientCapacity.probability",
                "must be between 0 and 1",
            ));
        }
        for (i, o) in ice.offerings.iter().enumerate() {
            let capacity_type = match o.capacity_type.as_deref() {
                None => None,
                Some("spot") => Some(CapacityType::Spot),
                Some("on-demand") => Some(CapacityType::OnDemand),
                Some("reserved") => Some(CapacityType::Reserved),
                Some(other) => {
                    errors.push(sf.error(
                        &format!("cloud.insufficientCapacity.offerings[{i}].capacityType"),
                        format!("{other:?} is not spot, on-demand or reserved"),
                    ));
                    None
                }
            };
            if let Some(t) = &o.instance_type
                && cat.get(t).is_none()
            {
                errors.push(sf.error(
                    &format!("cloud.insufficientCapacity.offerings[{i}].instanceType"),
                    format!("{t:?} is not in the {} catalog", kind.as_str()),
                ));
            }
            unavailable.push(OfferingMatch {
                instance_type: o.instance_type.clone(),
                zone: o.zone.clone(),
                capacity_type,
            });
        }
    }
    input.cloud = CloudConfig {
        provisioning: range(cs.provisioning, d.provisioning),
        join: range(cs.join, d.join),
        image_pull: range(cs.image_pull, d.image_pull),
        spot_interruptions_per_hour: cs.spot_interruptions_per_hour.unwrap_or(0.0).max(0.0),
        interruption_notice_ms: cs
            .interruption_notice
            .map_or(d.interruption_notice_ms, |m| m.0),
        ice_probability,
        unavailable,
        ..d
    };
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

fn resolve_pattern(
    p: &Pattern,
    dir: &Path,
    sf: &ScenarioFile,
    field: &str,
    errors: &mut Vec<String>,
) -> Pattern {
    let Pattern::Csv(rel) = p else {
        return p.clone();
    };
    let full = dir.join(rel);
    match std::fs::read_to_string(&full) {
        Ok(text) => match Pattern::parse_csv(&text) {
            Ok(values) => Pattern::Trace(values),
            Err((line, msg)) => {
                errors.push(format!("{}:{line}: {msg}", full.display()));
                Pattern::Trace(Vec::new())
            }
        },
        Err(e) => {
            errors.push(sf.error(
                &format!("{field}.csv"),
                format!("cannot read {}: {e}", full.display()),
            ));
            Pattern::Trace(Vec::new())
        }
    }
}

/// What `nodescaler::disruption` reads for a NodePool: its policy (`Balanced` is simulated as
/// `WhenEmptyOrUnderutilized`), every budget without a schedule with its reasons (a run's clock
/// starts at 0, so cron windows would not mean what the user wrote), and `expireAfter`.
fn pool_disruption(np: &convert::NodePool, input: &PoolInput) -> snap::PoolDisruption {
    let mut d = input.disruption();
    d.policy = match np.disruption.policy {
        convert::ConsolidationPolicy::WhenEmpty => ConsolidationPolicy::WhenEmpty,
        convert::ConsolidationPolicy::WhenEmptyOrUnderutilized
        | convert::ConsolidationPolicy::Balanced => ConsolidationPolicy::WhenEmptyOrUnderutilized,
    };
    d.budgets = np
        .disruption
        .budgets
        .iter()
        .filter(|b| b.schedule.is_none())
        .map(|b| snap::Budget {
            nodes: match b.nodes {
                convert::BudgetNodes::Count(n) => snap::BudgetNodes::Count(n),
                convert::BudgetNodes::Percent(p) => snap::BudgetNodes::Percent(p),
            },
            schedule: None,
            duration_ms: None,
            reasons: b
                .reasons
                .iter()
                .filter_map(|r| match r.as_str() {
                    "Empty" => Some(BudgetReason::Empty),
                    "Drifted" => Some(BudgetReason::Drifted),
                    "Underutilized" => Some(BudgetReason::Underutilized),
                    _ => None,
                })
                .collect(),
        })
        .collect();
    d.expire_after_ms = np
        .expire_after
        .map(|e| i64::try_from(e.as_millis()).unwrap_or(i64::MAX));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate")
    }

    fn run_json(file: &str, seed: Option<u64>) -> String {
        let input = load(&examples().join(file), seed).unwrap_or_else(|e| panic!("{e:?}"));
        Simulation::new(input).run().to_json()
    }

    #[test]
    fn every_example_scenario_loads_and_runs() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(examples())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        names.sort();
        assert!(names.len() >= 6, "{names:?}");
        for n in names {
            let input = load(&n, None).unwrap_or_else(|e| panic!("{}: {e:?}", n.display()));
            let mut sim = Simulation::new(input);
            let report = sim.run();
            sim.check_invariants()
                .unwrap_or_else(|e| panic!("{}: {e}", n.display()));
            assert!(report.launches > 0, "{}: nothing launched", n.display());
            assert!(!report.timeline.is_empty());
        }
    }

    #[test]
    fn same_scenario_and_seed_give_byte_identical_json() {
        let a = run_json("seed-002-sqs-burst.yaml", Some(11));
        let b = run_json("seed-002-sqs-burst.yaml", Some(11));
        assert_eq!(a, b);
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        for key in [
            "costUsd",
            "nodeHours",
            "peakNodes",
            "peakPods",
            "podPendingSeconds",
            "backlogMax",
            "launches",
            "consolidations",
            "interruptions",
            "timeline",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p95", "max"] {
            assert!(v["podPendingSeconds"].get(key).is_some());
        }
        for key in [
            "t",
            "desiredReplicas",
            "runningPods",
            "pendingPods",
            "nodes",
            "backlog",
            "costRate",
        ] {
            assert!(
                v["timeline"][0].get(key).is_some(),
                "timeline missing {key}"
            );
        }
        assert_ne!(a, run_json("seed-002-sqs-burst.yaml", Some(12)));
    }

    /// `--compare`'s two runs of one scenario file, with coordination as given.
    fn compare(file: &str, seed: u64, coordination: bool) -> Comparison {
        let mut input = load(&examples().join(file), Some(seed)).unwrap();
        if !coordination {
            input.coordination_ceiling_ms = None;
        }
        let upstream = Simulation::new(input.upstream()).run();
        Comparison::new(upstream, Simulation::new(input).run())
    }

    #[test]
    fn predictive_provisioning_and_push_cut_seed_002_pending_p95_at_no_extra_cost() {
        for seed in [2, 3] {
            let c = compare("seed-002-sqs-burst.yaml", seed, false);
            assert_eq!(c.upstream.features, Vec::<String>::new());
            assert_eq!(c.tandem.features, ["predictive", "push"]);
            assert_eq!(c.upstream.launches_ahead, 0);
            assert!(c.tandem.launches_ahead > 0);
            let p95 = c.difference.pending_p95_percent.unwrap();
            let cost = c.difference.cost_percent.unwrap();
            assert!(p95 <= -20.0, "seed {seed}: p95 {p95} %\n{}", c.table());
            assert!(cost <= 2.0, "seed {seed}: cost {cost} %\n{}", c.table());
            assert!(c.tandem.launches <= c.upstream.launches, "{}", c.table());
        }
    }

    #[test]
    fn headroom_with_prediction_cuts_seed_002_pending_p95_by_30_percent_at_under_10_percent_cost() {
        // Issue #12's bar, on three seeds.
        for seed in [3, 4] {
            let c = compare("seed-002-sqs-burst-warm.yaml", seed, false);
            let p95 = c.difference.pending_p95_percent.unwrap();
            let cost = c.difference.cost_percent.unwrap();
            assert!(p95 <= -30.0, "seed {seed}: p95 {p95} %\n{}", c.table());
            assert!(cost <= 10.0, "seed {seed}: cost {cost} %\n{}", c.table());
        }
        let c = compare("seed-002-sqs-burst-warm.yaml", 2, false);
        assert_eq!(c.tandem.features, ["predictive", "push", "headroom"]);
        let p95 = c.difference.pending_p95_percent.unwrap();
        let cost = c.difference.cost_percent.unwrap();
        assert!(p95 <= -30.0, "p95 {p95} %\n{}", c.table());
        assert!(cost <= 10.0, "cost {cost} %\n{}", c.table());
        // The HTML page holds both runs and the comparison table.
        let page = c.html();
        assert_eq!(
            page.matches("<svg").count(),
            2 * html::render(&c.tandem).matches("<svg").count()
        );
        assert!(page.contains("Upstream semantics vs Tandem"));
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        for key in ["upstream", "tandem", "difference"] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert!(json["difference"]["pendingP95Percent"].as_f64().is_some());
    }

    #[test]
    fn a_bad_headroom_override_is_refused_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(examples().join("seed-002-sqs-burst-warm.yaml"))
            .unwrap()
            .replace(
                "../seeds",
                &examples().join("../seeds").display().to_string(),
            )
            .replace("pods=2,cpu=256m", "pods=two,cpu=256m");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        let Err(LoadError::Invalid(lines)) = load(&path, None) else {
            panic!("a bad headroom must be refused");
        };
        assert!(
            lines
                .iter()
                .any(|l| l.contains("overrides.nodepools.node-spot.headroom")
                    && l.contains("pods=\"two\" is not a whole number")),
            "{lines:?}"
        );
    }

    #[test]
    fn longer_consolidate_after_keeps_nodes_longer_and_oscillates_less() {
        // Upstream's semantics of consolidateAfter alone: coordination off (it keeps the 1m
        // run's nodes through the bursts, which is its own test below).
        let run = |file: &str| -> serde_json::Value {
            let mut input = load(&examples().join(file), None).unwrap();
            input.coordination_ceiling_ms = None;
            serde_json::from_str(&Simulation::new(input).run().to_json()).unwrap()
        };
        let one = run("seed-002-sqs-burst.yaml");
        let five = run("seed-002-sqs-burst-consolidate-5m.yaml");
        let hours = |v: &serde_json::Value| v["nodeHoursTotal"].as_f64().unwrap();
        assert!(
            hours(&five) >= hours(&one),
            "{} < {}",
            hours(&five),
            hours(&one)
        );
        assert!(five["oscillations"].as_u64() <= one["oscillations"].as_u64());
    }

    #[test]
    fn coordination_with_the_pod_layer_cuts_seed_002_launches_without_more_pending() {
        let run = |coordinated: bool| -> serde_json::Value {
            let mut input = load(&examples().join("seed-002-sqs-burst.yaml"), None).unwrap();
            if !coordinated {
                input.coordination_ceiling_ms = None;
            }
            serde_json::from_str(&Simulation::new(input).run().to_json()).unwrap()
        };
        let (on, off) = (run(true), run(false));
        let launches = |v: &serde_json::Value| v["launches"].as_u64().unwrap();
        let p95 = |v: &serde_json::Value| v["podPendingSeconds"]["p95"].as_f64().unwrap();
        assert!(
            launches(&on) * 2 <= launches(&off),
            "on {} vs off {}",
            launches(&on),
            launches(&off)
        );
        assert!(p95(&on) <= p95(&off), "{} > {}", p95(&on), p95(&off));
        assert!(
            on["oscillations"].as_u64() < off["oscillations"].as_u64(),
            "{on} {off}"
        );
    }

    #[test]
    fn a_bad_scenario_is_refused_with_a_located_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.yaml");
        std::fs::write(
            &p,
            "duration: 1h\ncatalog: {provider: aws}\nmanifests:\n  - inline: |\n      apiVersion: karpenter.sh/v1\n      kind: NodePool\n      metadata: {name: x}\n      spec:\n        template:\n          spec:\n            nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: d}\n            requirements: []\nworkload:\n  sources:\n    - scaledObject: nope/missing\n      metric: {constant: 1}\n",
        )
        .unwrap();
        let Err(LoadError::Invalid(lines)) = load(&p, None) else {
            panic!("accepted")
        };
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("bad.yaml:15: Scenario bad: workload.sources[0].scaledObject: no ScaledObject nope/missing among the manifests"),
            "{}",
            lines[0]
        );
        std::fs::write(&p, "duration: 1h\ncatalog: {provider: aws}\nmanifests:\n  - inline: |\n      apiVersion: karpenter.sh/v1\n      kind: NodePool\n      metadata: {name: x}\n      spec: {weight: 500, template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: d}, requirements: []}}}\n").unwrap();
        let Err(LoadError::Invalid(lines)) = load(&p, None) else {
            panic!("accepted")
        };
        assert!(lines[0].contains("bad.yaml#manifests[0]:"), "{lines:?}");
        assert!(lines[0].contains("NodePool x: spec.weight"), "{lines:?}");
    }

    /// Seeds 0..20 of a small burst: no pod is lost, no instance leaks (all nodes gone after
    /// the idle tail), and nothing is left pending.
    #[test]
    fn seed_sweep_loses_no_pod_and_leaks_no_instance() {
        for seed in 0..20 {
            let mut input = load(&examples().join("seed-002-sqs-burst.yaml"), Some(seed)).unwrap();
            input.duration_ms = 90 * 60_000;
            input.cloud.spot_interruptions_per_hour = 2.0;
            input.cloud.ice_probability = 0.2;
            // Two bursts, then silence: everything must scale back to zero.
            if let SourceKind::Queue { arrivals, .. } = &mut input.sources[0].kind {
                *arrivals = Pattern::Bursts(tandem_sim::pattern::Bursts {
                    every: Millis(12 * 60_000),
                    duration: Millis(4 * 60_000),
                    value: 45.0,
                    base: 0.0,
                    start: Millis(5 * 60_000),
                    count: Some(2),
                });
            }
            let mut sim = Simulation::new(input);
            let report = sim.run();
            sim.check_invariants()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(sim.pod_count(), 0, "seed {seed}: pods left");
            assert_eq!(
                sim.node_count(),
                0,
                "seed {seed}: instances leaked: {}",
                report.to_json()
            );
        }
    }

    /// Where test artifacts go: `<target>/<profile>/artifacts/simulate/`.
    fn artifact_dir() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let profile = exe.parent().and_then(Path::parent).unwrap();
        let dir = profile.join("artifacts").join("simulate");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn chromium() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("TANDEM_CHROMIUM") {
            return Some(PathBuf::from(p));
        }
        [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    fn headless(browser: &Path, profile: &Path, extra: &[String]) -> std::process::Output {
        let mut cmd = std::process::Command::new("timeout");
        cmd.arg("120").arg(browser).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ]);
        cmd.arg(format!("--user-data-dir={}", profile.display()));
        cmd.args(extra);
        cmd.output().unwrap()
    }

    /// The seed-002 report in a real headless browser: the page loads with no console message,
    /// the DOM has every chart as SVG with drawn series and decision markers, and a screenshot
    /// is kept as an artifact (`<target>/debug/artifacts/simulate/report.png`).
    /// Takes a 1400 px wide screenshot of `url` into `shot` (kept as an artifact).
    fn screenshot(browser: &Path, profile: &Path, url: &str, shot: &Path, height: u32) {
        let _ = std::fs::remove_file(shot);
        let out = headless(
            browser,
            profile,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size=1400,{height}"),
                url.to_owned(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 20_000,
            "screenshot {} is {size} bytes",
            shot.display()
        );
        eprintln!("screenshot: {}", shot.display());
    }

    #[test]
    fn html_report_renders_its_charts_in_headless_chromium() {
        let input = load(&examples().join("seed-002-sqs-burst.yaml"), None).unwrap();
        let report = Simulation::new(input).run();
        let dir = artifact_dir();
        let page = dir.join("report.html");
        std::fs::write(&page, html::render(&report)).unwrap();
        let Some(browser) = chromium() else {
            // hack/test.sh installs chromium and sets this, so CI never skips silently.
            assert!(
                std::env::var_os("TANDEM_REQUIRE_CHROMIUM").is_none(),
                "TANDEM_REQUIRE_CHROMIUM is set but no chromium was found"
            );
            eprintln!(
                "skipped: no chromium (apt-get install -y chromium, or set TANDEM_CHROMIUM); the report is at {}",
                page.display()
            );
            return;
        };
        let profile = tempfile::tempdir().unwrap();
        let url = format!("file://{}", page.display());
        let dom = headless(
            &browser,
            profile.path(),
            &["--dump-dom".to_owned(), url.clone()],
        );
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let text = String::from_utf8_lossy(&dom.stdout);
        let stderr = String::from_utf8_lossy(&dom.stderr);
        assert!(!stderr.contains(":CONSOLE("), "console output: {stderr}");
        assert_eq!(text.matches("<svg").count(), 6, "six charts");
        for id in [
            "decisions",
            "source",
            "replicas",
            "pending",
            "nodes",
            "cost",
        ] {
            assert!(text.contains(&format!("id=\"{id}\"")), "chart {id} missing");
        }
        assert!(text.matches("class=\"series\"").count() >= 6);
        assert!(text.contains("class=\"layer\""), "stacked node layers");
        assert!(text.contains("class=\"markers\""), "decision markers");
        screenshot(
            &browser,
            profile.path(),
            &url,
            &dir.join("report.png"),
            2000,
        );

        // The --compare page: both runs' charts and the comparison table, no console error.
        let input = load(&examples().join("seed-002-sqs-burst.yaml"), None).unwrap();
        let upstream = Simulation::new(input.upstream()).run();
        let cmp = Comparison::new(upstream, report);
        let page = dir.join("compare.html");
        std::fs::write(&page, cmp.html()).unwrap();
        let url = format!("file://{}", page.display());
        let dom = headless(
            &browser,
            profile.path(),
            &["--dump-dom".to_owned(), url.clone()],
        );
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let stderr = String::from_utf8_lossy(&dom.stderr);
        assert!(!stderr.contains(":CONSOLE("), "console output: {stderr}");
        let text = String::from_utf8_lossy(&dom.stdout);
        assert_eq!(text.matches("<svg").count(), 12, "six charts per run");
        assert!(text.contains("Upstream semantics vs Tandem"));
        screenshot(
            &browser,
            profile.path(),
            &url,
            &dir.join("compare.png"),
            3000,
        );
    }
}
