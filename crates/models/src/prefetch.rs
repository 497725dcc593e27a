//! An epoch of training batches, built ahead of the steps that use them on the GPU backends.
//!
//! A batch is made on the host (images cropped, flipped and normalized, token windows cut)
//! and then uploaded. On a GPU backend the host only queues a step's kernels, so building the
//! next batch on a thread of its own overlaps it with the step still running on the device;
//! built in the step's own thread, it would wait for the host to come back from queuing. On
//! the CPU backends the step's kernels already use every core, and batches are built where
//! they are used, as before.
//!
//! The batches are the loader's, in the loader's order, built one after the other by a single
//! thread: the same seed gives the same batches whether or not they are built ahead.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::data::dataloader::DataLoader;
use burn::prelude::*;

use crate::landscape::cpu_backend;

/// Batches kept ready ahead of the step using them.
const AHEAD: usize = 2;

/// One epoch of a loader's batches (an iterator), built ahead on the GPU backends.
pub enum Epoch<'a, T> {
    /// Each batch built when it is asked for.
    OnDemand(Box<dyn Iterator<Item = T> + 'a>),
    /// Batches built by a thread of their own, up to `AHEAD` ahead.
    Ahead {
        batches: Option<Receiver<T>>,
        builder: Option<JoinHandle<()>>,
    },
}

impl<'a, T: Send + 'static> Epoch<'a, T> {
    /// The next epoch of `loader`'s batches, built ahead unless `device` is a CPU backend's.
    pub fn of<B: Backend>(loader: &'a Arc<dyn DataLoader<B, T>>, device: &B::Device) -> Self {
        if cpu_backend::<B>(device) {
            Self::on_demand(loader)
        } else {
            Self::ahead(loader)
        }
    }

    /// The next epoch of `loader`'s batches, each built when it is asked for.
    pub fn on_demand<B: Backend>(loader: &'a Arc<dyn DataLoader<B, T>>) -> Self {
        Epoch::OnDemand(Box::new(loader.iter()))
    }

    /// The next epoch of `loader`'s batches, built by a thread of their own; the thread stops
    /// when the epoch ends or the epoch is dropped.
    pub fn ahead<B: Backend>(loader: &Arc<dyn DataLoader<B, T>>) -> Self {
        let loader = Arc::clone(loader);
        let (sender, batches) = sync_channel(AHEAD);
        let builder = std::thread::Builder::new()
            .name("levelset-batches".into())
            .spawn(move || {
                for batch in loader.iter() {
                    if sender.send(batch).is_err() {
                        break; // the consumer stopped before the epoch's end
                    }
                }
            })
            .expect("the batch thread starts");
        Epoch::Ahead {
            batches: Some(batches),
            builder: Some(builder),
        }
    }
}

impl<T> Iterator for Epoch<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Epoch::OnDemand(batches) => batches.next(),
            Epoch::Ahead { batches, builder } => {
                let batch = batches.as_ref()?.recv().ok();
                if batch.is_none() {
                    // The builder has finished: the epoch ended, or building a batch
                    // panicked, which must not pass for a short epoch.
                    *batches = None;
                    if let Some(Err(panic)) = builder.take().map(JoinHandle::join) {
                        std::panic::resume_unwind(panic);
                    }
                }
                batch
            }
        }
    }
}

impl<T> Drop for Epoch<'_, T> {
    fn drop(&mut self) {
        if let Epoch::Ahead { batches, builder } = self {
            // Closing the channel first makes a builder blocked on a full channel return.
            batches.take();
            if let Some(builder) = builder.take() {
                // A panic while unwinding would abort; the consumer has stopped anyway.
                let _ = builder.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::data::dataloader::DataLoaderBuilder;
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::InMemDataset;

    use super::*;
    use crate::backend::{Compute, device};

    #[derive(Clone)]
    struct Numbers;

    impl Batcher<Compute, usize, Vec<usize>> for Numbers {
        fn batch(&self, items: Vec<usize>, _device: &burn::tensor::Device<Compute>) -> Vec<usize> {
            assert!(!items.contains(&1000), "item 1000 cannot be batched");
            items
        }
    }

    fn loader(items: Vec<usize>) -> Arc<dyn DataLoader<Compute, Vec<usize>>> {
        DataLoaderBuilder::new(Numbers)
            .batch_size(3)
            .shuffle(7)
            .set_device(device())
            .build(InMemDataset::new(items))
    }

    #[test]
    fn batches_built_ahead_are_the_loaders_in_its_order() {
        let (a, b) = (loader((0..40).collect()), loader((0..40).collect()));
        for _epoch in 0..3 {
            let on_demand: Vec<_> = Epoch::on_demand(&a).collect();
            let ahead: Vec<_> = Epoch::ahead(&b).collect();
            assert_eq!(on_demand.len(), 14);
            assert_eq!(on_demand, ahead);
        }
        // The CPU backends build on demand.
        assert!(matches!(Epoch::of(&a, &device()), Epoch::OnDemand(_)));
    }

    #[test]
    fn an_epoch_left_early_stops_its_builder() {
        let loader = loader((0..40).collect());
        let mut epoch = Epoch::ahead(&loader);
        assert!(epoch.next().is_some());
        drop(epoch); // joins the builder, which was blocked on the full channel
        assert_eq!(Epoch::ahead(&loader).count(), 14, "the next epoch is whole");
    }

    #[test]
    fn a_batch_that_cannot_be_built_is_a_panic_not_a_short_epoch() {
        let loader = loader(vec![1, 2, 1000]);
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Epoch::ahead(&loader).count()
        }));
        let panic = built.expect_err("the builder's panic reaches the consumer");
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(message.contains("item 1000"), "{message}");
    }
}
