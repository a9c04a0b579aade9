//! MQTT 3.1.1 subscribers on pushbench's own stream (`client = "lean"`).
//!
//! The connection is opened like every other client's (`ClientSpec::open`), so every byte and
//! TLS record is counted at the stream, over TCP or TLS alike. The packets are rumqttc's own
//! codec (`rumqttc::mqttbytes::v4`); a client holds only its stream, one read buffer that grows
//! as a packet needs and one write buffer for its acknowledgements, instead of rumqttc's event
//! loop with its per-client request and event queues.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::mqtt::qos4;
use super::{ClientSpec, Received, Transport};
use crate::plan::TransportPlan;
use crate::tls::Alpn;
use crate::wire::{ClientStream, ConnCounter, WireCounts};

/// How long a connect and subscribe may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest packet accepted or sent, as for the rumqttc client.
const MAX_PACKET_BYTES: usize = 2 << 20;

/// Room for a subscriber's small packets; the buffer grows when one needs more.
const INITIAL_READ_BYTES: usize = 64;

/// The packet id of the one SUBSCRIBE a connection sends.
const SUBSCRIBE_PKID: u16 = 1;

/// A subscribed MQTT 3.1.1 client.
pub struct MqttLean {
    stream: ClientStream,
    counter: Arc<ConnCounter>,
    read: BytesMut,
    write: BytesMut,
    /// The QoS the broker granted; the asked-for one until its SUBACK.
    granted: u8,
    /// Silence after which the client sends PINGREQ; `None` when keep-alive is off.
    keep_alive: Option<Duration>,
    last_sent: Instant,
    /// A PINGREQ went out and nothing has come back since.
    ping_outstanding: bool,
    /// The client's QoS 2 messages received and not yet released.
    unreleased: Qos2Session,
    /// Messages whose flow ended before the SUBACK: a resumed persistent session's broker
    /// sends what it queued right after CONNACK, and they are deliveries like any other.
    early: Vec<Received>,
}

/// The QoS 2 packet ids a client has received and not yet seen released: session state
/// that outlives its connections (MQTT 3.1.1 §4.1), so that a PUBLISH a persistent session's
/// broker sends again after a reconnect is known for a duplicate.
#[derive(Debug, Clone, Default)]
pub struct Qos2Session(Arc<Mutex<HashSet<u16>>>);

impl Qos2Session {
    /// Notes `pkid` received; true the first time (until it is released).
    fn receive(&self, pkid: u16) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pkid)
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn release(&self, pkid: u16) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&pkid);
    }
}

impl Transport for MqttLean {
    async fn connect(spec: &ClientSpec) -> anyhow::Result<Self> {
        let TransportPlan::Mqtt(plan) = spec.plan.as_ref() else {
            bail!("mqtt client given a {} plan", spec.plan.kind());
        };
        let stream = spec.open(Alpn::None).await?;
        let mut mqtt = MqttLean {
            counter: stream.counter(),
            stream,
            read: BytesMut::with_capacity(INITIAL_READ_BYTES),
            write: BytesMut::new(),
            granted: plan.qos,
            keep_alive: Some(plan.keep_alive).filter(|k| !k.is_zero()),
            last_sent: Instant::now(),
            ping_outstanding: false,
            unreleased: spec.qos2_session.handle(),
            early: Vec::new(),
        };
        let mut connect = mqttbytes::v4::Connect::new(spec.client_id.as_str());
        connect.keep_alive =
            u16::try_from(plan.keep_alive.as_secs()).context("MQTT keep-alive above 65535 s")?;
        connect.clean_session = plan.clean_session;
        let subscribe = Subscribe {
            pkid: SUBSCRIBE_PKID,
            ..Subscribe::new(plan.topic_of(&spec.channel), qos4(plan.qos))
        };
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, mqtt.handshake(connect, subscribe))
            .await
            .context("no CONNACK and SUBACK within 10 s")??;
        Ok(mqtt)
    }

    /// One packet, waited for, then every complete packet already read: an exchange ends
    /// with the bytes read so far handled and their acknowledgements sent, so that byte
    /// windows are exact.
    async fn next(&mut self, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        if !self.early.is_empty() {
            delivered.append(&mut self.early);
            return Ok(());
        }
        while delivered.is_empty() {
            let packet = self.packet_or_ping().await?;
            self.take(packet, delivered)?;
            while let Some(packet) = self.buffered_packet()? {
                self.take(packet, delivered)?;
            }
            self.flush().await?;
        }
        Ok(())
    }

    fn wire(&self) -> WireCounts {
        self.counter.snapshot()
    }

    fn granted_qos(&self) -> Option<u8> {
        Some(self.granted)
    }
}

impl MqttLean {
    /// CONNECT and its CONNACK, then SUBSCRIBE and its SUBACK, keeping what the broker sends
    /// in between.
    async fn handshake(
        &mut self,
        connect: mqttbytes::v4::Connect,
        subscribe: Subscribe,
    ) -> anyhow::Result<()> {
        self.queue(&Packet::Connect(connect))?;
        self.flush().await?;
        match self.packet().await.context("waiting for CONNACK")? {
            Packet::ConnAck(ConnAck {
                code: ConnectReturnCode::Success,
                session_present,
            }) => {
                // A fresh session starts with no flow open: its packet ids are new.
                if !session_present {
                    self.unreleased.clear();
                }
            }
            Packet::ConnAck(ConnAck { code, .. }) => {
                bail!("the broker refused the connection: {code:?}")
            }
            other => bail!("the broker answered CONNECT with {other:?}"),
        }
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        loop {
            match self.packet().await.context("waiting for SUBACK")? {
                Packet::SubAck(ack) if ack.pkid == SUBSCRIBE_PKID => {
                    self.granted = match ack.return_codes.first() {
                        Some(SubscribeReasonCode::Success(granted)) => *granted as u8,
                        _ => return Err(anyhow!("the broker refused the subscription")),
                    };
                    return Ok(());
                }
                packet => {
                    let mut early = std::mem::take(&mut self.early);
                    self.take(packet, &mut early)?;
                    self.early = early;
                    self.flush().await?;
                }
            }
        }
    }

    /// The next packet; at a keep-alive's silence a PINGREQ first, and an error when a
    /// second one passes with nothing from the broker.
    async fn packet_or_ping(&mut self) -> anyhow::Result<Packet> {
        let Some(keep_alive) = self.keep_alive else {
            return self.packet().await;
        };
        loop {
            let deadline = self.last_sent + keep_alive;
            // Reading is cancel-safe: bytes read stay in `self.read` for the next attempt.
            if let Ok(packet) = tokio::time::timeout_at(deadline, self.packet()).await {
                return packet;
            }
            if self.ping_outstanding {
                bail!("no answer from the broker within {keep_alive:?} of a PINGREQ");
            }
            self.queue(&Packet::PingReq)?;
            self.flush().await?;
            self.ping_outstanding = true;
        }
    }

    /// The next packet, reading from the stream as needed; an error once the stream ends,
    /// so that the client loop reconnects.
    async fn packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = self.buffered_packet()? {
                return Ok(packet);
            }
            let read = self
                .stream
                .read_buf(&mut self.read)
                .await
                .context("reading from the MQTT broker")?;
            if read == 0 {
                bail!("the MQTT broker closed the connection");
            }
        }
    }

    /// A complete packet already read, if there is one; makes room for the rest of a
    /// partial one.
    fn buffered_packet(&mut self) -> anyhow::Result<Option<Packet>> {
        match Packet::read(&mut self.read, MAX_PACKET_BYTES) {
            Ok(packet) => {
                // Any packet shows the broker alive, as its PINGRESP would.
                self.ping_outstanding = false;
                Ok(Some(packet))
            }
            Err(mqttbytes::Error::InsufficientBytes(missing)) => {
                self.read.reserve(missing);
                Ok(None)
            }
            Err(e) => Err(e).context("malformed MQTT packet from the broker"),
        }
    }

    /// Handles one incoming packet, queueing its acknowledgement: a message is delivered on
    /// its PUBLISH at every QoS, as rumqttc's client does; at QoS 2 a PUBLISH the broker sends
    /// again before its PUBREL (its PUBREC lost, also in an earlier connection) is not.
    fn take(&mut self, packet: Packet, delivered: &mut Vec<Received>) -> anyhow::Result<()> {
        match packet {
            Packet::Publish(publish) => {
                let received = Received::now(publish.payload);
                match publish.qos {
                    QoS::AtMostOnce => delivered.push(received),
                    QoS::AtLeastOnce => {
                        self.queue(&Packet::PubAck(PubAck::new(publish.pkid)))?;
                        delivered.push(received);
                    }
                    QoS::ExactlyOnce => {
                        self.queue(&Packet::PubRec(PubRec::new(publish.pkid)))?;
                        if self.unreleased.receive(publish.pkid) {
                            delivered.push(received);
                        }
                    }
                }
            }
            // Also for an id this connection never saw: the broker completes a flow the
            // client's earlier connection acknowledged (MQTT 3.1.1 §4.4).
            Packet::PubRel(release) => {
                self.queue(&Packet::PubComp(PubComp::new(release.pkid)))?;
                self.unreleased.release(release.pkid);
            }
            Packet::Disconnect => bail!("the MQTT broker sent DISCONNECT"),
            _ => {}
        }
        Ok(())
    }

    fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        packet
            .write(&mut self.write, MAX_PACKET_BYTES)
            .context("encoding an MQTT packet")?;
        Ok(())
    }

    /// Sends what is queued, in one write.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.write.is_empty() {
            return Ok(());
        }
        self.stream
            .write_all(&self.write)
            .await
            .context("writing to the MQTT broker")?;
        self.stream
            .flush()
            .await
            .context("writing to the MQTT broker")?;
        self.write.clear();
        self.last_sent = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qos2_id_is_a_duplicate_until_released_in_every_connection() {
        let session = Qos2Session::default();
        let next_connection = session.clone();
        assert!(session.receive(7));
        assert!(!next_connection.receive(7), "sent again before its PUBREL");
        next_connection.release(7);
        assert!(session.receive(7), "a new message may reuse a released id");
        session.clear();
        assert!(
            next_connection.receive(7),
            "a fresh session forgets every flow"
        );
    }
}
