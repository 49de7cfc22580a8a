using System.Text;
using Kafka.Reliable;
using Microsoft.Data.Sqlite;
using NpgsqlTypes;

namespace OrdersToDatabase;

/// <summary>One order as a row of the orders table, with where it came from.</summary>
public readonly record struct OrderRow(string OrderId, string Customer, DateTimeOffset CreatedAt, decimal Total, int Lines, int KafkaPartition, long KafkaOffset);

/// <summary>
/// Stores a batch of orders with one bulk write. The consumer runs it with the transactional idempotency store, so the
/// write, the idempotency records of the batch's orders and the partition's offset commit in one database transaction:
/// the batch is stored entirely or not at all, and an order delivered again (a resend, or a batch redelivered after a
/// crash) is left out of the batch before the handler sees it.
/// </summary>
public abstract class OrdersBatchHandler(BatchStats stats) : IBatchMessageHandler<Order>
{
    public async ValueTask HandleAsync(MessageBatch<Order> batch, CancellationToken cancellationToken)
    {
        var rows = new List<OrderRow>(batch.Count);
        var rejected = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            var (order, context) = (batch[i].Message, batch[i].Context);
            if (order.TotalPrice < 0)
            {
                // A business rule the translator does not know: this order fails, the others go on. A NonRetryableException is
                // fatal, so the order is dead-lettered (alone) instead of retried. With a transactional store the batch's
                // transaction is rolled back and the batch is handed again without it: what is written below is never kept twice.
                batch.Fail(i, new NonRetryableException($"order {order.OrderId} has a negative total ({order.TotalPrice}): a refund is not an order"));
                rejected++;
                continue;
            }

            rows.Add(new OrderRow(order.OrderId, order.CustomerName, order.CreatedAt, order.TotalPrice, order.Lines.Count, context.Partition, context.Offset));
        }

        stats.Handled(batch.Count, rejected);
        if (rows.Count > 0)
        {
            // Every message of the batch has the same transaction: the first one's context gives it.
            await InsertAsync(batch[0].Context, rows, cancellationToken);
        }
    }

    /// <summary>Writes the rows through the idempotency store's transaction.</summary>
    protected abstract ValueTask InsertAsync(MessageContext context, List<OrderRow> rows, CancellationToken cancellationToken);
}

/// <summary>SQLite: one multi-row INSERT per batch, on the store's connection and inside its transaction.</summary>
public sealed class SqliteOrdersHandler(OrdersTable table, BatchStats stats) : OrdersBatchHandler(stats)
{
    /// <summary>7 parameters a row: 7,000 a statement, far below SQLite's 32,766. With Batch:MaxSize 500, one statement per batch.</summary>
    private const int RowsPerStatement = 1_000;

    protected override async ValueTask InsertAsync(MessageContext context, List<OrderRow> rows, CancellationToken cancellationToken)
    {
        var transaction = context.GetSqliteTransaction();
        for (var start = 0; start < rows.Count; start += RowsPerStatement)
        {
            var count = Math.Min(RowsPerStatement, rows.Count - start);
            await using var insert = transaction.Connection.CreateCommand();
            insert.Transaction = transaction.Transaction;
            var sql = new StringBuilder($"INSERT INTO {table.Name} ({OrdersTable.Columns}) VALUES ");
            for (var i = 0; i < count; i++)
            {
                var row = rows[start + i];
                sql.Append(i == 0 ? "(" : ", (").Append($"$o{i}, $c{i}, $t{i}, $v{i}, $l{i}, $p{i}, $f{i})");
                insert.Parameters.Add(new SqliteParameter($"$o{i}", row.OrderId));
                insert.Parameters.Add(new SqliteParameter($"$c{i}", row.Customer));
                insert.Parameters.Add(new SqliteParameter($"$t{i}", row.CreatedAt.ToUniversalTime().ToString("O")));
                insert.Parameters.Add(new SqliteParameter($"$v{i}", row.Total));
                insert.Parameters.Add(new SqliteParameter($"$l{i}", row.Lines));
                insert.Parameters.Add(new SqliteParameter($"$p{i}", row.KafkaPartition));
                insert.Parameters.Add(new SqliteParameter($"$f{i}", row.KafkaOffset));
            }

            insert.CommandText = sql.ToString();
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }
    }
}

/// <summary>PostgreSQL: one binary COPY per batch, on the store's connection and inside its transaction.</summary>
public sealed class PostgresOrdersHandler(OrdersTable table, BatchStats stats) : OrdersBatchHandler(stats)
{
    protected override async ValueTask InsertAsync(MessageContext context, List<OrderRow> rows, CancellationToken cancellationToken)
    {
        var transaction = context.GetNpgsqlTransaction();

        // COPY runs in the transaction open on the connection: it commits (or rolls back) with the idempotency records.
        await using var copy = await transaction.Connection.BeginBinaryImportAsync(
            $"COPY {table.Name} ({OrdersTable.Columns}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        foreach (var row in rows)
        {
            await copy.StartRowAsync(cancellationToken);
            await copy.WriteAsync(row.OrderId, NpgsqlDbType.Text, cancellationToken);
            await copy.WriteAsync(row.Customer, NpgsqlDbType.Text, cancellationToken);
            await copy.WriteAsync(row.CreatedAt.ToUniversalTime(), NpgsqlDbType.TimestampTz, cancellationToken);
            await copy.WriteAsync(row.Total, NpgsqlDbType.Numeric, cancellationToken);
            await copy.WriteAsync(row.Lines, NpgsqlDbType.Integer, cancellationToken);
            await copy.WriteAsync(row.KafkaPartition, NpgsqlDbType.Integer, cancellationToken);
            await copy.WriteAsync(row.KafkaOffset, NpgsqlDbType.Bigint, cancellationToken);
        }

        await copy.CompleteAsync(cancellationToken);
    }
}

/// <summary>What the handler saw: every call (a batch, or a message run alone), the messages it was handed and those it rejected.</summary>
public sealed class BatchStats
{
    private long _calls;
    private long _messages;
    private long _rejected;
    private long _callsWithRejections;
    private long _largest;

    public long Calls => Interlocked.Read(ref _calls);

    public long Messages => Interlocked.Read(ref _messages);

    public long Rejected => Interlocked.Read(ref _rejected);

    public long CallsWithRejections => Interlocked.Read(ref _callsWithRejections);

    public long Largest => Interlocked.Read(ref _largest);

    public void Handled(int messages, int rejected)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _messages, messages);
        if (rejected > 0)
        {
            Interlocked.Add(ref _rejected, rejected);
            Interlocked.Increment(ref _callsWithRejections);
        }

        long largest;
        while (messages > (largest = Interlocked.Read(ref _largest)) && Interlocked.CompareExchange(ref _largest, messages, largest) != largest)
        {
        }
    }
}
