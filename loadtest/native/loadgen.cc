// Open-loop gRPC load generator for the riskgate harness.
//
// Python prebuilds every request (and the execution report that follows an accepted order) and
// writes them to a file; this program only paces, sends and timestamps, so the harness costs a few
// microseconds of CPU per order instead of the tens a Python gRPC client needs. Request i is planned
// at start + offset + round(i * 1e9 / rate) on CLOCK_MONOTONIC, the same clock Python reads, and is
// sent at that time however slow earlier answers are: latency is counted from the planned time.
//
// Execution reports go, by default, on one ReportExecutions stream per sender (its own connection),
// numbered 1, 2, 3...; an acknowledgement covers every offset up to its acked_through, and lists
// the ones that did not succeed. `--exec-mode unary` sends one ReportExecution call each instead.
//
// Protocol with the harness: after connecting, print "ready" (plus " realtime" when it got a real-time
// priority); read "start <monotonic ns>"; run; write
// the records; print "done <CPU seconds used>".

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

const char kCheckOrder[] = "/riskgate.v1.PreTradeRisk/CheckOrder";
const char kCheckOrders[] = "/riskgate.v1.PreTradeRisk/CheckOrders";
const char kReportExecution[] = "/riskgate.v1.PreTradeRisk/ReportExecution";
const char kReportExecutions[] = "/riskgate.v1.PreTradeRisk/ReportExecutions";
const int kDecisionAccept = 1;
const int kDecisionReduceOnly = 3;

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Sleeps to `spin_ns` before the deadline, then spins: a timer wake-up on this virtual machine comes
// tens of microseconds late, a spin does not. The spin runs on the harness's CPU, never the server's.
void sleep_until_ns(int64_t deadline, int64_t spin_ns) {
  const int64_t wake = deadline - spin_ns;
  if (now_ns() < wake) {
    timespec ts;
    ts.tv_sec = wake / 1000000000;
    ts.tv_nsec = wake % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }
  while (now_ns() < deadline) {
  }
}

// Must match loadtest/records.py RECORD_DTYPE.
struct Record {
  int64_t planned_ns = 0;
  int64_t sent_ns = 0;
  int64_t done_ns = 0;
  int64_t exec_sent_ns = 0;
  int64_t exec_done_ns = 0;
  int32_t decision = 0;
  int32_t reason = 0;
  int32_t status = -1;
  int32_t exec_status = -1;
};

struct Order {
  grpc::ByteBuffer request;
  grpc::ByteBuffer on_accept;  // empty: nothing to report
  grpc::ByteBuffer on_reduce;
  bool has_accept = false;
  bool has_reduce = false;
  // The same reports as bytes, to wrap in an ExecutionFeedMessage with the offset it gets.
  std::string accept_bytes;
  std::string reduce_bytes;
};

grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

bool read_u32(std::istream& in, uint32_t* value) {
  unsigned char b[4];
  if (!in.read(reinterpret_cast<char*>(b), 4)) return false;
  *value = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
  return true;
}

bool read_blob(std::istream& in, std::string* out) {
  uint32_t size = 0;
  if (!read_u32(in, &size)) return false;
  out->resize(size);
  return size == 0 || bool(in.read(&(*out)[0], size));
}

std::vector<Order> load_orders(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t count = 0;
  if (!in || !read_u32(in, &count)) throw std::runtime_error("cannot read " + path);
  std::vector<Order> orders(count);
  std::string request, accept, reduce;
  for (auto& order : orders) {
    if (!read_blob(in, &request) || !read_blob(in, &accept) || !read_blob(in, &reduce)) {
      throw std::runtime_error("truncated " + path);
    }
    order.request = to_buffer(request);
    order.has_accept = !accept.empty();
    order.has_reduce = !reduce.empty();
    if (order.has_accept) order.on_accept = to_buffer(accept);
    if (order.has_reduce) order.on_reduce = to_buffer(reduce);
    order.accept_bytes = accept;
    order.reduce_bytes = reduce;
  }
  return orders;
}

bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t* value) {
  *value = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    uint8_t byte = *p++;
    *value |= uint64_t(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

void put_varint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(char(uint8_t(value) | 0x80));
    value >>= 7;
  }
  out->push_back(char(value));
}

// ExecutionFeedMessage{offset = 1, report = 2}; with_account_state stays false (the lean ack).
grpc::ByteBuffer feed_message(uint64_t offset, const std::string& report) {
  std::string out;
  out.reserve(report.size() + 16);
  out.push_back(char(0x08));
  put_varint(&out, offset);
  out.push_back(char(0x12));
  put_varint(&out, report.size());
  out += report;
  return to_buffer(out);
}

std::string flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string owned;
  buffer.Dump(&slices);
  for (auto& s : slices) owned.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return owned;
}

// ExecutionFeedAck: acked_through (field 1) and, per listed ExecutionOutcome (field 2), its
// offset (1) and code (2).
void parse_feed_ack(const grpc::ByteBuffer& buffer, uint64_t* through,
                    std::vector<std::pair<uint64_t, int32_t>>* outcomes) {
  const std::string bytes = flatten(buffer);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = p + bytes.size();
  while (p < end) {
    uint64_t key, value;
    if (!read_varint(p, end, &key)) return;
    const uint64_t field = key >> 3, wire = key & 7;
    if (wire == 0) {
      if (!read_varint(p, end, &value)) return;
      if (field == 1) *through = value;
    } else if (wire == 2) {
      if (!read_varint(p, end, &value) || value > uint64_t(end - p)) return;
      if (field == 2) {
        const uint8_t* q = p;
        const uint8_t* q_end = p + value;
        uint64_t offset = 0, code = 0;
        while (q < q_end) {
          uint64_t k, v;
          if (!read_varint(q, q_end, &k)) break;
          if ((k & 7) == 0) {
            if (!read_varint(q, q_end, &v)) break;
            if ((k >> 3) == 1) offset = v;
            if ((k >> 3) == 2) code = v;
          } else if ((k & 7) == 2) {
            if (!read_varint(q, q_end, &v) || v > uint64_t(q_end - q)) break;
            q += v;
          } else {
            break;
          }
        }
        outcomes->emplace_back(offset, int32_t(code));
      }
      p += value;
    } else {
      return;
    }
  }
}

// Reads CheckOrderResponse.decision (field 2) and the code (field 1) of the first Reason (field 3)
// straight from the wire bytes: no generated code is needed for two integers.
void parse_response(const grpc::ByteBuffer& buffer, int32_t* decision, int32_t* reason) {
  grpc::Slice slice;
  std::string owned;
  const uint8_t* p;
  const uint8_t* end;
  if (buffer.TrySingleSlice(&slice).ok()) {
    p = slice.begin();
    end = slice.end();
  } else {
    std::vector<grpc::Slice> slices;
    buffer.Dump(&slices);
    for (auto& s : slices) owned.append(reinterpret_cast<const char*>(s.begin()), s.size());
    p = reinterpret_cast<const uint8_t*>(owned.data());
    end = p + owned.size();
  }
  bool have_reason = false;
  while (p < end) {
    uint64_t key, value;
    if (!read_varint(p, end, &key)) return;
    uint64_t field = key >> 3, wire = key & 7;
    if (wire == 0) {
      if (!read_varint(p, end, &value)) return;
      if (field == 2) *decision = int32_t(value);
    } else if (wire == 2) {
      if (!read_varint(p, end, &value) || value > uint64_t(end - p)) return;
      if (field == 3 && !have_reason) {
        const uint8_t* q = p;
        const uint8_t* q_end = p + value;
        while (q < q_end) {
          uint64_t k, v;
          if (!read_varint(q, q_end, &k)) break;
          if ((k & 7) == 0) {
            if (!read_varint(q, q_end, &v)) break;
            if ((k >> 3) == 1) {
              *reason = int32_t(v);
              break;
            }
          } else if ((k & 7) == 2) {
            if (!read_varint(q, q_end, &v) || v > uint64_t(q_end - q)) break;
            q += v;
          } else {
            break;
          }
        }
        have_reason = true;
      }
      p += value;
    } else if (wire == 1) {
      p += 8;
    } else if (wire == 5) {
      p += 4;
    } else {
      return;
    }
  }
}

// Real-time priority for the pacing and the completion thread: both sleep almost all the time, and
// when they wake they must not wait behind whatever else shares the harness's CPU, or sends go out
// late and answers are stamped late. Needs root or CAP_SYS_NICE; without it they stay as they are.
bool make_realtime(pthread_t thread, int priority) {
  sched_param param{};
  param.sched_priority = priority;
  return pthread_setschedparam(thread, SCHED_FIFO, &param) == 0;
}

struct Options {
  std::string target;
  std::string mode = "unary";
  std::string exec_mode = "stream";
  std::string input;
  std::string output;
  double rate = 1000;
  int64_t offset_ns = 0;
  int streams = 1;
  int64_t deadline_ms = 5000;
  bool realtime = true;
  int64_t spin_ns = 0;
};

class Generator;

// One completion-queue tag; `kind` tells the completion thread what finished.
struct Tag {
  enum Kind { kCheck, kExec, kStreamStart, kStreamWrite, kStreamRead, kStreamWritesDone, kStreamFinish };
  Kind kind;
  size_t index = 0;
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  struct Stream* stream = nullptr;
};

struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
  std::mutex mutex;
  std::deque<size_t> queued;     // paced but waiting for the previous write to finish
  std::deque<size_t> in_flight;  // written, answer not read yet (answers come in request order)
  // The execution stream: messages waiting for the previous write, and (offset, order index) of
  // those written and not yet covered by an acknowledgement.
  bool exec = false;
  uint64_t next_offset = 1;
  std::deque<grpc::ByteBuffer> queued_messages;
  std::deque<std::pair<uint64_t, size_t>> unacked;
  bool writing = false;
  bool no_more = false;
  bool writes_done = false;
  bool finished = false;
  grpc::ByteBuffer read_buffer;
  grpc::ByteBuffer write_buffer;  // the execution message being written (must outlive the Write)
  grpc::Status status;
  Tag start_tag{Tag::kStreamStart};
  Tag write_tag{Tag::kStreamWrite};
  Tag read_tag{Tag::kStreamRead};
  Tag writes_done_tag{Tag::kStreamWritesDone};
  Tag finish_tag{Tag::kStreamFinish};
};

class Generator {
 public:
  Generator(const Options& options, std::vector<Order> orders)
      : options_(options), orders_(std::move(orders)), records_(orders_.size()) {
    grpc::ChannelArguments args;
    // A fresh connection per sender, so separate senders never share one HTTP/2 connection.
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    channel_ = grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<grpc::GenericStub>(channel_);
    // Execution reports travel on a connection of their own, as they would from a matching engine.
    exec_channel_ = grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
    exec_stub_ = std::make_unique<grpc::GenericStub>(exec_channel_);
  }

  bool connect() {
    auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
    if (!channel_->WaitForConnected(deadline) || !exec_channel_->WaitForConnected(deadline)) return false;
    completion_thread_ = std::thread([this] { complete(); });
    if (options_.realtime) {
      // After the channel exists, so gRPC's own helper threads keep the normal policy.
      realtime_ = make_realtime(pthread_self(), 20) && make_realtime(completion_thread_.native_handle(), 20);
    }
    const auto run_ms = int64_t(1000.0 * double(orders_.size()) / options_.rate);
    if (options_.exec_mode == "stream") {
      exec_stream_ = std::make_unique<Stream>();
      Stream* stream = exec_stream_.get();
      stream->exec = true;
      for (Tag* tag : {&stream->start_tag, &stream->write_tag, &stream->read_tag, &stream->writes_done_tag,
                       &stream->finish_tag}) {
        tag->stream = stream;
      }
      stream->context.set_deadline(std::chrono::system_clock::now() +
                                   std::chrono::milliseconds(15000 + run_ms + 2 * options_.deadline_ms));
      stream->call = exec_stub_->PrepareCall(&stream->context, kReportExecutions, &cq_);
      outstanding_ += 1;  // the stream itself, until Finish completes
      stream->call->StartCall(&stream->start_tag);
      for (int spin = 0; exec_started_.load() < 1; ++spin) {
        if (spin > 10000) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    if (options_.mode == "stream") {
      for (int i = 0; i < options_.streams; ++i) {
        auto stream = std::make_unique<Stream>();
        for (Tag* tag : {&stream->start_tag, &stream->write_tag, &stream->read_tag, &stream->writes_done_tag,
                         &stream->finish_tag}) {
          tag->stream = stream.get();
        }
        streams_.push_back(std::move(stream));
      }
      // The stream lives for the whole run; its deadline still bounds a server that stops answering.
      const auto stream_deadline =
          std::chrono::system_clock::now() + std::chrono::milliseconds(15000 + run_ms + options_.deadline_ms);
      for (auto& stream : streams_) {
        stream->context.set_deadline(stream_deadline);
        stream->call = stub_->PrepareCall(&stream->context, kCheckOrders, &cq_);
        outstanding_ += 1;  // the stream itself, until Finish completes
        checks_outstanding_ += 1;
        stream->call->StartCall(&stream->start_tag);
      }
      for (int spin = 0; started_.load() < options_.streams; ++spin) {
        if (spin > 10000) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    return true;
  }

  void run(int64_t start_ns) {
    const double period = 1e9 / options_.rate;
    const size_t count = orders_.size();
    // At high rates a full spin would keep the harness's CPU busy most of the time.
    options_.spin_ns = std::min(options_.spin_ns, int64_t(period / 4));
    for (size_t i = 0; i < count; ++i) {
      const int64_t planned = start_ns + options_.offset_ns + std::llround(double(i) * period);
      records_[i].planned_ns = planned;
      // Behind schedule: send at once, never skip; the lateness is in the latency.
      if (now_ns() < planned) sleep_until_ns(planned, options_.spin_ns);
      if (options_.mode == "stream") {
        send_stream(i);
      } else {
        send_unary(i);
      }
    }
    if (options_.mode == "stream") {
      for (auto& stream : streams_) {
        std::lock_guard<std::mutex> lock(stream->mutex);
        stream->no_more = true;
        maybe_writes_done(stream.get());
      }
    }
  }

  void finish() {
    // Every call carries a deadline, so these waits are bounded. Once every check is answered,
    // every execution report has been queued: the execution stream may end.
    while (checks_outstanding_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (exec_stream_) {
      std::lock_guard<std::mutex> lock(exec_stream_->mutex);
      exec_stream_->no_more = true;
      maybe_writes_done(exec_stream_.get());
    }
    while (outstanding_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    cq_.Shutdown();
    completion_thread_.join();
  }

  const std::vector<Record>& records() const { return records_; }
  bool realtime() const { return realtime_; }

 private:
  std::chrono::system_clock::time_point deadline() const {
    return std::chrono::system_clock::now() + std::chrono::milliseconds(options_.deadline_ms);
  }

  void send_unary(size_t i) {
    auto* tag = new Tag{Tag::kCheck};
    tag->index = i;
    tag->context.set_deadline(deadline());
    outstanding_ += 1;
    checks_outstanding_ += 1;
    records_[i].sent_ns = now_ns();
    tag->reader = stub_->PrepareUnaryCall(&tag->context, kCheckOrder, orders_[i].request, &cq_);
    tag->reader->StartCall();
    tag->reader->Finish(&tag->response, &tag->status, tag);
  }

  void send_stream(size_t i) {
    Stream* stream = streams_[i % streams_.size()].get();
    std::lock_guard<std::mutex> lock(stream->mutex);
    if (stream->finished) {
      records_[i].sent_ns = records_[i].done_ns = now_ns();
      records_[i].status = int32_t(grpc::StatusCode::UNAVAILABLE);
      return;
    }
    stream->in_flight.push_back(i);
    if (stream->writing) {
      stream->queued.push_back(i);
      return;
    }
    stream->writing = true;
    records_[i].sent_ns = now_ns();
    stream->call->Write(orders_[i].request, &stream->write_tag);
  }

  // Caller holds stream->mutex.
  void maybe_writes_done(Stream* stream) {
    if (stream->no_more && !stream->writing && stream->queued.empty() && stream->queued_messages.empty() &&
        !stream->writes_done && !stream->finished) {
      stream->writes_done = true;
      stream->call->WritesDone(&stream->writes_done_tag);
    }
  }

  void report_execution(size_t i, int32_t decision) {
    const Order& order = orders_[i];
    const grpc::ByteBuffer* report = nullptr;
    if (decision == kDecisionAccept && order.has_accept) report = &order.on_accept;
    if (decision == kDecisionReduceOnly && order.has_reduce) report = &order.on_reduce;
    if (report == nullptr) return;
    if (exec_stream_) {
      stream_execution(i, decision == kDecisionAccept ? order.accept_bytes : order.reduce_bytes);
      return;
    }
    auto* tag = new Tag{Tag::kExec};
    tag->index = i;
    tag->context.set_deadline(deadline());
    outstanding_ += 1;
    records_[i].exec_sent_ns = now_ns();
    tag->reader = exec_stub_->PrepareUnaryCall(&tag->context, kReportExecution, *report, &cq_);
    tag->reader->StartCall();
    tag->reader->Finish(&tag->response, &tag->status, tag);
  }

  void stream_execution(size_t i, const std::string& report) {
    Stream* stream = exec_stream_.get();
    std::lock_guard<std::mutex> lock(stream->mutex);
    records_[i].exec_sent_ns = now_ns();
    if (stream->finished) {
      records_[i].exec_done_ns = records_[i].exec_sent_ns;
      records_[i].exec_status = int32_t(grpc::StatusCode::UNAVAILABLE);
      return;
    }
    const uint64_t offset = stream->next_offset++;
    stream->unacked.emplace_back(offset, i);
    grpc::ByteBuffer message = feed_message(offset, report);
    if (stream->writing) {
      stream->queued_messages.push_back(std::move(message));
      return;
    }
    stream->writing = true;
    stream->write_buffer = std::move(message);
    stream->call->Write(stream->write_buffer, &stream->write_tag);
  }

  // Caller holds stream->mutex: an acknowledgement of the execution stream arrived.
  void acknowledged(Stream* stream, const grpc::ByteBuffer& ack, int64_t at) {
    uint64_t through = 0;
    std::vector<std::pair<uint64_t, int32_t>> outcomes;
    parse_feed_ack(ack, &through, &outcomes);
    size_t listed = 0;
    while (!stream->unacked.empty() && stream->unacked.front().first <= through) {
      const auto [offset, index] = stream->unacked.front();
      stream->unacked.pop_front();
      int32_t status = 0;
      while (listed < outcomes.size() && outcomes[listed].first < offset) ++listed;
      if (listed < outcomes.size() && outcomes[listed].first == offset) status = outcomes[listed].second;
      records_[index].exec_done_ns = at;
      records_[index].exec_status = status;
    }
  }

  void answered(size_t i, const grpc::ByteBuffer& response, int64_t at) {
    Record& record = records_[i];
    record.done_ns = at;
    record.status = 0;
    parse_response(response, &record.decision, &record.reason);
    report_execution(i, record.decision);
  }

  void complete() {
    void* raw;
    bool ok;
    while (cq_.Next(&raw, &ok)) {
      const int64_t at = now_ns();
      Tag* tag = static_cast<Tag*>(raw);
      switch (tag->kind) {
        case Tag::kCheck: {
          if (tag->status.ok()) {
            answered(tag->index, tag->response, at);
          } else {
            records_[tag->index].done_ns = at;
            records_[tag->index].status = int32_t(tag->status.error_code());
          }
          delete tag;
          checks_outstanding_ -= 1;
          outstanding_ -= 1;
          break;
        }
        case Tag::kExec: {
          records_[tag->index].exec_done_ns = at;
          records_[tag->index].exec_status = int32_t(tag->status.error_code());
          delete tag;
          outstanding_ -= 1;
          break;
        }
        case Tag::kStreamStart: {
          Stream* stream = tag->stream;
          if (ok) stream->call->Read(&stream->read_buffer, &stream->read_tag);
          else stream->call->Finish(&stream->status, &stream->finish_tag);
          if (stream->exec) exec_started_ += 1;
          else started_ += 1;
          break;
        }
        case Tag::kStreamWrite: {
          Stream* stream = tag->stream;
          std::lock_guard<std::mutex> lock(stream->mutex);
          if (ok && stream->exec && !stream->queued_messages.empty()) {
            stream->write_buffer = std::move(stream->queued_messages.front());
            stream->queued_messages.pop_front();
            stream->call->Write(stream->write_buffer, &stream->write_tag);
          } else if (ok && !stream->queued.empty()) {
            size_t next = stream->queued.front();
            stream->queued.pop_front();
            records_[next].sent_ns = now_ns();
            stream->call->Write(orders_[next].request, &stream->write_tag);
          } else {
            // A failed write means the stream is broken: Read fails next and Finish tells why.
            stream->writing = false;
            if (!ok) {
              stream->queued.clear();
              stream->queued_messages.clear();
            }
            maybe_writes_done(stream);
          }
          break;
        }
        case Tag::kStreamRead: {
          Stream* stream = tag->stream;
          if (!ok) {
            stream->call->Finish(&stream->status, &stream->finish_tag);
            break;
          }
          if (stream->exec) {
            {
              std::lock_guard<std::mutex> lock(stream->mutex);
              acknowledged(stream, stream->read_buffer, at);
            }
            stream->call->Read(&stream->read_buffer, &stream->read_tag);
            break;
          }
          size_t index;
          {
            std::lock_guard<std::mutex> lock(stream->mutex);
            index = stream->in_flight.front();
            stream->in_flight.pop_front();
          }
          answered(index, stream->read_buffer, at);
          stream->call->Read(&stream->read_buffer, &stream->read_tag);
          break;
        }
        case Tag::kStreamWritesDone:
          break;
        case Tag::kStreamFinish: {
          Stream* stream = tag->stream;
          std::lock_guard<std::mutex> lock(stream->mutex);
          const int32_t status = stream->status.ok() ? int32_t(grpc::StatusCode::UNKNOWN)
                                                     : int32_t(stream->status.error_code());
          for (size_t index : stream->in_flight) {
            records_[index].done_ns = at;
            records_[index].status = status;
          }
          for (const auto& [offset, index] : stream->unacked) {
            records_[index].exec_done_ns = at;
            records_[index].exec_status = status;
          }
          stream->in_flight.clear();
          stream->unacked.clear();
          stream->queued_messages.clear();
          stream->finished = true;
          if (!stream->exec) checks_outstanding_ -= 1;
          outstanding_ -= 1;
          break;
        }
      }
    }
  }

  Options options_;
  std::vector<Order> orders_;
  std::vector<Record> records_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::shared_ptr<grpc::Channel> exec_channel_;
  std::unique_ptr<grpc::GenericStub> exec_stub_;
  grpc::CompletionQueue cq_;
  std::thread completion_thread_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::unique_ptr<Stream> exec_stream_;
  std::atomic<int64_t> outstanding_{0};
  // Checks not answered yet (unary calls, and check streams until they finish).
  std::atomic<int64_t> checks_outstanding_{0};
  std::atomic<int> started_{0};
  std::atomic<int> exec_started_{0};
  bool realtime_ = false;
};

bool parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--target") options->target = value;
    else if (key == "--mode") options->mode = value;
    else if (key == "--exec-mode") options->exec_mode = value;
    else if (key == "--input") options->input = value;
    else if (key == "--output") options->output = value;
    else if (key == "--rate") options->rate = std::stod(value);
    else if (key == "--offset-ns") options->offset_ns = std::stoll(value);
    else if (key == "--streams") options->streams = std::stoi(value);
    else if (key == "--deadline-ms") options->deadline_ms = std::stoll(value);
    else if (key == "--realtime") options->realtime = value == "1";
    else if (key == "--spin-us") options->spin_ns = std::stoll(value) * 1000;
    else return false;
  }
  return !options->target.empty() && !options->input.empty() && !options->output.empty() && options->rate > 0 &&
         options->streams > 0 && (options->mode == "unary" || options->mode == "stream") &&
         (options->exec_mode == "unary" || options->exec_mode == "stream");
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, &options)) {
    std::cerr << "usage: loadgen --target HOST:PORT --mode unary|stream --input F --output F --rate R "
                 "[--offset-ns N] [--streams S] [--deadline-ms D] [--realtime 0|1] [--spin-us U] "
                 "[--exec-mode stream|unary]\n";
    return 2;
  }
  // The default 50 us timer slack would make every paced send up to 50 us late.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  try {
    Generator generator(options, load_orders(options.input));
    if (!generator.connect()) {
      std::cerr << "loadgen: cannot connect to " << options.target << "\n";
      return 1;
    }
    std::cout << "ready" << (generator.realtime() ? " realtime" : "") << std::endl;
    std::string word;
    int64_t start_ns = 0;
    if (!(std::cin >> word >> start_ns) || word != "start") return 1;
    generator.run(start_ns);
    generator.finish();
    std::ofstream out(options.output, std::ios::binary);
    const auto& records = generator.records();
    out.write(reinterpret_cast<const char*>(records.data()), std::streamsize(records.size() * sizeof(Record)));
    if (!out) return 1;
    rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const double cpu_s = double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                         double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    std::cout << "done " << cpu_s << std::endl;
  } catch (const std::exception& exc) {
    std::cerr << "loadgen: " << exc.what() << "\n";
    return 1;
  }
  return 0;
}
