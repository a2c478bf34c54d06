package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawStream measures the baseline of relay throughput through the
// cluster: JetStream itself, on the same NATS servers, with what the nodes
// ask of it — a memory stream with 3 replicas, 64 KiB messages published
// 64 at a time (acknowledgements awaited), and one ordered consumer per
// node reading every message. It returns bytes per second over size.
func rawStream(ctx context.Context, urls []string, size int64) (float64, error) {
	pub, err := nats.Connect(urls[0])
	if err != nil {
		return 0, fmt.Errorf("bench: nats: %w", err)
	}
	defer pub.Close()
	js, err := jetstream.New(pub)
	if err != nil {
		return 0, fmt.Errorf("bench: jetstream: %w", err)
	}
	const name, subject = "BENCH", "bench.raw"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
		Storage: jetstream.MemoryStorage, Replicas: min(3, len(urls)), MaxBytes: 256 << 20, Discard: jetstream.DiscardOld}); err != nil {
		return 0, fmt.Errorf("bench: stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	for _, u := range urls {
		stop, err := consumeAll(ctx, u, name)
		if err != nil {
			return 0, err
		}
		defer stop()
	}
	msg := make([]byte, 64<<10)
	start := time.Now()
	for sent := int64(0); sent < size; {
		futs := make([]jetstream.PubAckFuture, 0, 64)
		for i := 0; i < 64 && sent < size; i++ {
			f, err := js.PublishAsync(subject, msg)
			if err != nil {
				return 0, fmt.Errorf("bench: publish: %w", err)
			}
			futs, sent = append(futs, f), sent+int64(len(msg))
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return 0, fmt.Errorf("bench: publish: %w", err)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return float64(size) / time.Since(start).Seconds(), nil
}

// consumeAll reads every new message of stream through url until stop.
func consumeAll(ctx context.Context, url, stream string) (func(), error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, fmt.Errorf("bench: nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var cons jetstream.Consumer
		cons, err = js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
		if err == nil {
			var cc jetstream.ConsumeContext
			if cc, err = cons.Consume(func(jetstream.Msg) {}); err == nil {
				return func() { cc.Stop(); nc.Close() }, nil
			}
		}
	}
	nc.Close()
	return nil, fmt.Errorf("bench: consumer: %w", err)
}
