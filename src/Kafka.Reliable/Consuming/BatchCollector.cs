using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Pipeline;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// Batches across partitions (<see cref="BatchOptions.AcrossPartitions"/>): each partition worker offers a slice of its
/// records (<see cref="BatchSlice"/>) and waits until it is done; the collector puts the slices offered into batches, in the
/// order offered, and runs one batch at a time through a <see cref="BatchExecution"/>. One per consumer runner.
/// </summary>
/// <remarks>
/// <para>
/// A partition has one slice offered at a time, so its records stay in offset order; within a batch each partition's records
/// are together, in offset order. A slice takes the records its partition has buffered when the batch is formed (not when
/// it was offered), bounded by what is left of <see cref="BatchOptions.MaxSize"/> and <see cref="BatchOptions.MaxBytes"/>;
/// a slice that does not fit waits for the next batch. With a <see cref="BatchOptions.Linger"/>, a batch smaller than
/// <see cref="BatchOptions.MaxSize"/> waits for more, counted from the arrival of its oldest record.
/// </para>
/// <para>
/// A worker that stops (its partition is revoked or lost, or the consumer stops) takes its slice back while it waits in the
/// queue; in a batch, the worker's stop stops the batch's retries and waits, and its abort cancels the handler, as for a
/// batch of one partition. The records of the batch's other partitions not done then go back to their workers, which offer
/// them again. No task runs while no slice is offered: the loop starts with the first offer and ends when the queue is empty.
/// </para>
/// </remarks>
internal sealed class BatchCollector
{
    private readonly ConsumerContext _consumer;
    private readonly BatchExecution _execution;
    private readonly List<BatchSlice> _queue = [];
    private readonly AsyncSignal _signal = new();
    private readonly Lock _lock = new();
    private BatchSlice[] _batch = new BatchSlice[8];
    private bool _running;
    private volatile bool _lingering;

    public BatchCollector(ConsumerContext consumer, IBatchProcessor processor)
    {
        _consumer = consumer;

        // The partitions waiting in the queue are not stuck while a batch ahead of them isolates a failure attempt by attempt
        // (the watchdog and health check read their activity).
        _execution = new BatchExecution(consumer, processor) { OnAttemptReturned = TouchQueued };
    }

    /// <summary>Offers a partition's slice (reset at the partition's next record) and waits until its records are done.</summary>
    /// <returns>
    /// <see langword="true"/> when every record of the slice is done; <see langword="false"/> when the worker stopped, or when
    /// the batch was stopped by another of its partitions (the records not done are left undone, to be offered again).
    /// </returns>
    public async ValueTask<bool> RunAsync(BatchSlice slice, CancellationToken stop, CancellationToken abort)
    {
        var result = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        slice.Result = result;
        slice.Collector = this;
        slice.Stop = stop;
        slice.Abort = abort;
        bool start;
        lock (_lock)
        {
            _queue.Add(slice);
            start = !_running;
            _running = true;
        }

        if (start)
        {
            _ = Task.Run(LoopAsync);
        }
        else
        {
            _signal.Set();
        }

        // Taken back at once if the worker stops while the slice waits in the queue; in a batch, the batch ends it.
        using (stop.UnsafeRegister(static state => ((BatchSlice)state!).Collector!.Withdraw((BatchSlice)state!), slice))
        {
            return await result.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Wakes a lingering batch: records arrived for a partition (poll thread; cheap when not lingering).</summary>
    public void RecordsArrived()
    {
        if (_lingering)
        {
            _signal.Set();
        }
    }

    private void Withdraw(BatchSlice slice)
    {
        lock (_lock)
        {
            if (!_queue.Remove(slice))
            {
                return;
            }
        }

        slice.Result!.TrySetResult(false);
    }

    private void TouchQueued()
    {
        lock (_lock)
        {
            foreach (var slice in _queue)
            {
                slice.Worker.Touch();
            }
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            await FormAndRunAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A bug (a batch's own failures never reach here): every waiting worker fails with it, as its own batch would
            // have, instead of waiting for a loop that is gone; the next offer starts a new loop.
            List<BatchSlice> waiting;
            lock (_lock)
            {
                waiting = [.. _queue];
                _queue.Clear();
                _running = false;
            }

            foreach (var slice in waiting)
            {
                slice.Result!.TrySetException(ex);
            }
        }
    }

    private async Task FormAndRunAsync()
    {
        var options = _consumer.Options.Batch;
        while (true)
        {
            if (options.Linger > TimeSpan.Zero && await LingerAsync(options).ConfigureAwait(false))
            {
                continue;
            }

            int members;
            lock (_lock)
            {
                if (_queue.Count == 0)
                {
                    _running = false;
                    return;
                }

                members = Form(options);
            }

            if (members > 0)
            {
                await RunBatchAsync(members).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Waits while the records of the queued slices make a batch smaller than <see cref="BatchOptions.MaxSize"/> and the oldest
    /// of them arrived less than <see cref="BatchOptions.Linger"/> ago.
    /// </summary>
    /// <returns><see langword="true"/> after a wait (look again); <see langword="false"/> when the batch should be formed now.</returns>
    private async ValueTask<bool> LingerAsync(BatchOptions options)
    {
        long available = 0;
        var oldest = long.MaxValue;
        lock (_lock)
        {
            foreach (var slice in _queue)
            {
                var published = slice.Worker.Tracker.Published;
                available += published - slice.End + slice.Count;
                if (published > slice.End)
                {
                    oldest = Math.Min(oldest, slice.Worker.BufferedAt(slice.End));
                }
            }
        }

        if (available >= options.MaxSize || oldest == long.MaxValue)
        {
            return false;
        }

        var time = _consumer.Time;
        var left = time.GetElapsedTime(time.GetTimestamp(), oldest + (long)(options.Linger.TotalSeconds * time.TimestampFrequency));
        if (left <= TimeSpan.Zero)
        {
            return false;
        }

        // Woken by a new slice, by records arriving for a queued one (RecordsArrived), or by the timer.
        _lingering = true;
        try
        {
            await _signal.WaitAsync(left, time).ConfigureAwait(false);
        }
        finally
        {
            _lingering = false;
        }

        return true;
    }

    /// <summary>Takes the queued slices that fit in one batch, in the order offered, into <see cref="_batch"/> (under the lock).</summary>
    /// <returns>The number of slices taken.</returns>
    private int Form(BatchOptions options)
    {
        var count = 0;
        long bytes = 0;
        var taken = 0;
        for (var i = 0; i < _queue.Count && count < options.MaxSize;)
        {
            var slice = _queue[i];
            if (!slice.Extend(ref count, ref bytes, options.MaxSize, options.MaxBytes))
            {
                // Nothing fits (a slice of records handed back, too large for what is left), or nothing is buffered yet.
                i++;
                continue;
            }

            if (taken == _batch.Length)
            {
                Array.Resize(ref _batch, taken * 2);
            }

            _batch[taken++] = slice;
            _queue.RemoveAt(i);
        }

        return taken;
    }

    private async Task RunBatchAsync(int members)
    {
        var slices = new ArraySegment<BatchSlice>(_batch, 0, members);
        var stops = new CancellationToken[members];
        var aborts = new CancellationToken[members];
        for (var i = 0; i < members; i++)
        {
            stops[i] = slices[i].Stop;
            aborts[i] = slices[i].Abort;
        }

        // The batch stops when any of its partitions' workers stops, and its handler is cancelled when any is aborted.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stops);
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(aborts);
        bool done;
        Exception? failure = null;
        try
        {
            done = await _execution.RunAsync(slices, stop.Token, abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A bug, never a handler failure: each worker of the batch fails with it, as its own batch would have.
            done = false;
            failure = ex;
        }

        for (var i = 0; i < members; i++)
        {
            var result = slices[i].Result!;
            _batch[i] = null!;
            if (failure is null)
            {
                result.TrySetResult(done);
            }
            else
            {
                result.TrySetException(failure);
            }
        }
    }
}
