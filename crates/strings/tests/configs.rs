//! The path methods' settings as they are written in an experiment's TOML file.

use levelset_models::optim::OptimizerConfig;
use levelset_strings::{AlignConfig, CurveConfig, CurveKind, LengthOver, LrSchedule, NebConfig};

#[test]
fn a_curve_section_needs_only_the_essentials() {
    let config: CurveConfig = toml::from_str(
        r#"
        kind = "bezier"
        bends = 1
        steps = 2000
        optimizer = { kind = "sgd", lr = 0.015, momentum = 0.9 }
        slack = 1.1
        "#,
    )
    .expect("parses");
    assert_eq!(config.kind, CurveKind::Bezier);
    assert_eq!(config.t_per_step, 1);
    assert_eq!(config.eval_points, 61);
    assert_eq!(config.schedule, LrSchedule::garipov());
    assert_eq!(config.init_noise, 0.0);
    assert_eq!(config.length_over, LengthOver::All);
    assert_eq!(config.validate(), Ok(()));

    let constant: CurveConfig = toml::from_str(
        r#"
        kind = "polychain"
        bends = 3
        steps = 100
        t_per_step = 4
        optimizer = { kind = "adam", lr = 0.01 }
        schedule = { kind = "constant" }
        eval_points = 21
        init_noise = 0.05
        slack = 1.0
        length_over = "weights"
        "#,
    )
    .expect("parses");
    assert_eq!(constant.schedule, LrSchedule::Constant);
    assert!(toml::from_str::<CurveConfig>("kind = \"bezier\"\nbend = 1").is_err());
}

#[test]
fn a_neb_section_lists_its_cycles_and_may_use_an_infinite_spring() {
    let config: NebConfig = toml::from_str(
        r#"
        pivots = 3
        spring = inf
        optimizer = { kind = "adam", lr = 0.01 }
        grid = 20
        slack = 1.1

        [[cycles]]
        steps = 500

        [[cycles]]
        steps = 500
        lr = 0.003
        insert = 4

        [[cycles]]
        steps = 1000
        lr = 0.001
        climbing = true
        "#,
    )
    .expect("parses");
    assert!(config.spring.is_infinite());
    assert_eq!(config.cycles.len(), 3);
    assert_eq!(config.cycles[1].insert, 4);
    assert!(config.cycles[2].climbing && !config.cycles[0].climbing);
    assert_eq!(
        config.optimizer,
        OptimizerConfig::Adam {
            lr: 0.01,
            weight_decay: None,
        }
    );
    assert_eq!(config.validate(), Ok(()));

    // JSON has no infinity: results files store "inf" and read it (and the null older files
    // hold) back as infinite, so a resumed sweep sees the same config.
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains(r#""spring":"inf""#), "{json}");
    let back: NebConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let old = json.replace(r#""spring":"inf""#, r#""spring":null"#);
    assert_eq!(serde_json::from_str::<NebConfig>(&old).unwrap(), config);
    let finite = json.replace(r#""spring":"inf""#, r#""spring":2.5"#);
    assert_eq!(
        serde_json::from_str::<NebConfig>(&finite).unwrap().spring,
        2.5
    );
    let bad = json.replace(r#""spring":"inf""#, r#""spring":"stiff""#);
    let err = serde_json::from_str::<NebConfig>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("neb.spring"), "{err}");
}

#[test]
fn an_empty_align_section_takes_the_defaults() {
    let config: AlignConfig = toml::from_str("").expect("parses");
    assert_eq!(config, AlignConfig::default());
    assert_eq!(config.validate(), Ok(()));
}
