//! `busd_fuzz::shm_ring`: rings run through scripts in which a hostile
//! peer scribbles on the memory, memfds that lie about being a ring; and
//! the bytes of an input read back as the same input.

use busd_fuzz::shm_ring::{Input, Liar, Step};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0_u8..80).prop_map(Step::Push),
        3 => Just(Step::Pop),
        2 => (0_u8..80).prop_map(Step::PopInto),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Step::Poke(at, bytes)),
        1 => (0_u8..4, any::<u64>()).prop_map(|(i, v)| Step::Set(i, v)),
        2 => (0_u8..4, any::<i8>()).prop_map(|(i, d)| Step::Nudge(i, d)),
        1 => (0_u8..80).prop_map(Step::Arm),
        2 => (prop::option::of(0_u8..128), prop_oneof![0_u32..300, Just(u32::MAX)])
            .prop_map(|(at, len)| Step::Length(at, len)),
    ]
}

fn ring() -> impl Strategy<Value = Input> {
    (
        0_u8..8,
        prop_oneof![Just(0_u8), 1_u8..64],
        prop::collection::vec(step(), 1..80),
    )
        .prop_map(|(capacity, max_message, steps)| Input::Ring {
            capacity,
            max_message,
            steps,
        })
}

fn liar() -> impl Strategy<Value = Input> {
    let pokes = prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 1..9)),
        0..4,
    );
    (0_u8..8, prop::option::of(0_u8..128), 0_u8..4, pokes).prop_map(
        |(capacity, size, seals, pokes)| Input::Liar {
            capacity,
            liar: Liar { size, seals, pokes },
        },
    )
}

proptest! {
    #[test]
    fn a_scribbling_peer_gets_errors_never_a_fault(input in ring()) {
        input.run();
    }

    #[test]
    fn lying_memfds_are_refused_at_open(input in liar()) {
        input.run();
    }

    #[test]
    fn an_input_reads_back_from_its_bytes(input in prop_oneof![ring(), liar()]) {
        prop_assert_eq!(Input::parse(&input.to_bytes()), input);
    }
}
