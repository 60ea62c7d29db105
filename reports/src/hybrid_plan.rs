//! `charter plan --hybrid`: how many on-prem nodes to run for a target load when the rest
//! spills to a cloud API, and what the blend costs per month.
//!
//! The model: an on-prem node has `slots` request slots (the measured on-prem tier's
//! `max_in_flight`, or the measured level's concurrency) and serves a request in the measured
//! mean service time. Requests arrive on the target schedule (rate and gamma burstiness,
//! seeded: the generator of `charter profile --arrivals gamma`). With N nodes the in-flight
//! policy takes a request on-prem while fewer than N × slots are in flight and spills it to
//! the cloud otherwise, so nothing queues: on-prem requests keep the measured on-prem latency
//! and spilled ones the cloud's. The spill fraction f(N) is that policy replayed on the
//! schedule ([`in_flight_spill`]). Monthly cost(N) = N × the node's $/hour × hours per month
//! plus requests per month × f(N) × the cloud price of one request (its measured mean input and
//! output tokens at the `cloud_api` entry). The plan is the N with the least monthly cost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Share of the requests starting at `starts` (sorted, seconds) that spill when `slots`
/// requests at most run at once, each for `service_s`: the in-flight policy.
pub fn in_flight_spill(starts: &[f64], service_s: f64, slots: usize) -> f64 {
    if starts.is_empty() {
        return 0.0;
    }
    // End times of the requests in flight, earliest first (non-negative floats order as
    // their bits).
    let mut ends: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(slots);
    let mut spilled = 0usize;
    for &t in starts {
        while ends
            .peek()
            .is_some_and(|Reverse(e)| f64::from_bits(*e) <= t)
        {
            ends.pop();
        }
        if ends.len() < slots {
            ends.push(Reverse((t + service_s).max(0.0).to_bits()));
        } else {
            spilled += 1;
        }
    }
    spilled as f64 / starts.len() as f64
}

/// What the plan is computed from.
#[derive(Debug, Clone)]
pub struct HybridPlanInput {
    /// Arrival times of the target schedule (sorted, seconds) and its mean rate.
    pub starts: Vec<f64>,
    pub rate_per_s: f64,
    /// One node: request slots and mean service time.
    pub slots_per_node: u32,
    pub service_s: f64,
    /// One node's cost per hour (amortised capex, opex, energy).
    pub node_per_hour: f64,
    /// One spilled request's cloud price.
    pub cloud_per_request: f64,
    /// Output tokens per request (for the blended price per 1M).
    pub output_tokens_per_request: f64,
    /// Node counts tried: 0 ..= max_nodes.
    pub max_nodes: u32,
}

/// One node count's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridPlanRow {
    pub nodes: u32,
    pub spill_fraction: f64,
    pub onprem_per_month: f64,
    pub cloud_per_month: f64,
    pub total_per_month: f64,
    /// Total ÷ output tokens per month × 1M.
    pub per_1m_output: Option<f64>,
}

/// Every node count's monthly cost, and the index of the cheapest (the fewest nodes on a tie).
pub fn plan(input: &HybridPlanInput) -> (Vec<HybridPlanRow>, usize) {
    let hours = crate::cost::HOURS_PER_MONTH;
    let requests_per_month = input.rate_per_s * 3600.0 * hours;
    let rows: Vec<HybridPlanRow> = (0..=input.max_nodes)
        .map(|n| {
            let slots = (n as usize) * input.slots_per_node as usize;
            let spill = in_flight_spill(&input.starts, input.service_s, slots);
            let onprem = f64::from(n) * input.node_per_hour * hours;
            let cloud = requests_per_month * spill * input.cloud_per_request;
            let total = onprem + cloud;
            let tokens = requests_per_month * input.output_tokens_per_request;
            HybridPlanRow {
                nodes: n,
                spill_fraction: spill,
                onprem_per_month: onprem,
                cloud_per_month: cloud,
                total_per_month: total,
                per_1m_output: (tokens > 0.0).then(|| total / tokens * 1e6),
            }
        })
        .collect();
    let best = rows
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_per_month.total_cmp(&b.1.total_per_month))
        .map_or(0, |(i, _)| i);
    (rows, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_spill_counts_arrivals_that_find_every_slot_busy() {
        // Service 1 s, 2 slots: 0 and 0.1 run; 0.5 spills; at 1.0 the first has ended; 1.05
        // finds 0.1 (until 1.1) and 1.0 running and spills; at 1.2 the one from 0.1 has ended.
        let starts = [0.0, 0.1, 0.5, 1.0, 1.05, 1.2];
        assert_eq!(in_flight_spill(&starts, 1.0, 2), 2.0 / 6.0);
        assert_eq!(in_flight_spill(&starts, 1.0, 0), 1.0);
        assert_eq!(in_flight_spill(&starts, 1.0, 6), 0.0);
    }

    #[test]
    fn the_plan_is_the_cheapest_node_count_and_each_cost_is_its_parts() {
        // Constant arrivals at 10/s, 1 s service: one node of 4 slots takes 4 in 10 (0.6 spill),
        // 3 nodes take everything.
        let starts: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.1).collect();
        let input = HybridPlanInput {
            starts,
            rate_per_s: 10.0,
            slots_per_node: 4,
            service_s: 1.0,
            node_per_hour: 1.0,
            cloud_per_request: 0.001,
            output_tokens_per_request: 100.0,
            max_nodes: 4,
        };
        let (rows, best) = plan(&input);
        let hours = crate::cost::HOURS_PER_MONTH;
        let month_requests = 10.0 * 3600.0 * hours;
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0].spill_fraction, 1.0);
        assert!((rows[1].spill_fraction - 0.6).abs() < 0.01, "{:?}", rows[1]);
        assert_eq!(rows[3].spill_fraction, 0.0);
        for r in &rows {
            let want = f64::from(r.nodes) * hours + month_requests * r.spill_fraction * 0.001;
            assert!((r.total_per_month - want).abs() < 1e-6, "{r:?}");
        }
        // All-cloud: 36,000 requests/h × 0.001 = 36/h; a node costs 1/h and takes 40 % of the
        // traffic per node here: 3 nodes (no spill) is cheapest.
        assert_eq!(best, 3, "{rows:?}");
        let per_1m = rows[3].total_per_month / (month_requests * 100.0) * 1e6;
        assert!((rows[3].per_1m_output.unwrap() - per_1m).abs() < 1e-9);
    }
}
