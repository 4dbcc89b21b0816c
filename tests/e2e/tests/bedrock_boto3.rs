//! boto3, the other SDK people point at Bedrock, against the simulator: the script exits
//! non-zero on the first check that fails.

use aigov_e2e::local_env;

#[test]
fn boto3_runs_all_four_operations_against_the_simulator() {
    let env = local_env();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bedrock-sim/boto3_client.py");
    let out = std::process::Command::new(&env.python)
        .arg(&script)
        .arg(&env.bedrock_sim_endpoint)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3 script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("boto3: 12 checks passed"), "{stdout}");
}
