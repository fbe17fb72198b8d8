# A Rack app whose requests do slow upstream work, for puma's tests: the same
# protocol and log lines as slow_wsgi.py.
#
#     SLOW_UPSTREAM_PORT=P puma -b tcp://127.0.0.1:PORT tests/servers/slow_rack.ru
#
# GET /work?id=ID&n=N[&port=Q] makes N calls to the upstream on 127.0.0.1:P (or
# Q): connect, send "ID I\n", read the answer line, close; answers 200 with the
# N answers. On SystemCallError it logs and re-raises, so puma's own error path
# runs. One stdout line per event (t is CLOCK_MONOTONIC in ns):
#     call id=ID i=I t=NS pid=PID
#     error id=ID i=I errno=E t=NS pid=PID
#     done id=ID t=NS pid=PID
require 'socket'
require 'uri'

UPSTREAM_PORT = Integer(ENV.fetch('SLOW_UPSTREAM_PORT'))

def say(line)
  $stdout.write("#{line} pid=#{Process.pid}\n")
  $stdout.flush
end

def now_ns
  Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
end

def upstream_call(port, ident, i)
  s = TCPSocket.new('127.0.0.1', port)
  begin
    s.write("#{ident} #{i}\n")
    answer = +''
    answer << s.readpartial(256) until answer.end_with?("\n")
    answer
  ensure
    s.close
  end
end

run(lambda do |env|
  query = URI.decode_www_form(env['QUERY_STRING'] || '').to_h
  ident = query.fetch('id', 'x')
  n = Integer(query.fetch('n', '20'))
  port = Integer(query.fetch('port', UPSTREAM_PORT.to_s))
  body = +''
  i = 0
  begin
    (1..n).each do |k|
      i = k
      body << upstream_call(port, ident, i)
      say("call id=#{ident} i=#{i} t=#{now_ns}")
    end
  rescue SystemCallError => e
    say("error id=#{ident} i=#{i} errno=#{e.errno} t=#{now_ns}")
    raise
  end
  say("done id=#{ident} t=#{now_ns}")
  [200, { 'Content-Type' => 'text/plain', 'Content-Length' => body.bytesize.to_s }, [body]]
end)
